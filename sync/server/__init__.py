"""The sync server: FastAPI on PostgreSQL (or SQLite for a single small site)."""
