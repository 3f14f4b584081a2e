"""Table definitions of kensa's two databases, their migrations and DDL snapshots.

``schema.device`` is the tablet's SQLite store, ``schema.server`` the sync server's PostgreSQL.
"""
