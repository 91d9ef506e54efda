"""Console pages, one module per area; each has a ``router`` mounted under ``/console``."""
