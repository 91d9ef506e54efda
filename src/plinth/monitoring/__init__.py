"""Prometheus metrics (declared in one module) and, later, drift, feedback and alerts."""
