"""Settings (built once at start-up) and, later, project-file specs."""

from plinth.config.settings import EMBEDDED_MODEL_NAME, Settings, load_settings

__all__ = ["EMBEDDED_MODEL_NAME", "Settings", "load_settings"]
