"""Automation (issue 15): a project described in files (validate, plan, apply, export, sync from
Git), pipelines of jobs with triggers, the closed retraining loop, and exports to the engines a
platform team runs (Kubernetes with KServe, Kueue and Kubeflow Trainer).

A service layer above :mod:`plinth.oversight`: it reads and changes the platform only through
the services below it, as a user's commands would.
"""
