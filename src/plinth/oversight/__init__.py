"""Oversight of models in production (issue 14): the request log, drift of what members ask,
anomalies, quality signals, counterfactual bias probes, per-answer explanations, alerts that
act, and reports for compliance staff.

A service layer above deployments and tuning: it reads what serving and the store record,
and acts through the services below it (a rollback, a webhook through the outbound fetcher).
"""
