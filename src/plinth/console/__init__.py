"""The web console: server-rendered pages over the same services and the same auth as the API
(ADR 0110). ``install_console(app)`` mounts it at ``/console``."""
