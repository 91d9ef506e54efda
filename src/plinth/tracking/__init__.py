"""Experiment tracking (runs, metrics, artifacts) and the model registry (versions,
aliases, lineage, model cards, evaluation reports). See :mod:`plinth.domain.tracking`."""
