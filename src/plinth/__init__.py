"""plinth: a self-hosted foundation for generative AI."""

__version__ = "0.1.0"
