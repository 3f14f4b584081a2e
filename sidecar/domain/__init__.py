"""The rules of an inspection, free of FastAPI and database sessions, so they are table-tested."""
