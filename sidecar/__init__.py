"""kensa's local service: the FastAPI app over the device's SQLite store."""

__version__ = "0.1.0"
