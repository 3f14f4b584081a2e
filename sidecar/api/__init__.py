"""The sidecar's HTTP API: routers, request/response bodies, named dependencies."""
