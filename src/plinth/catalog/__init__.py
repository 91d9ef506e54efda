"""The model catalog service."""
