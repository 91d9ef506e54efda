"""The plinth command line."""
