"""The formats both ends of kensa agree on: data and pure functions, no FastAPI, no database
session, so the tablet, the server and the schema read one definition of each."""
