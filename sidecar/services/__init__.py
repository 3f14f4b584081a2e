"""Use cases of the sidecar: each takes the caller's unit-of-work session and never commits."""
