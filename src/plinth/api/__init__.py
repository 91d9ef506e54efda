"""HTTP API: create_app(services) builds the FastAPI application."""
