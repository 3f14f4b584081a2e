"""Both ends of kensa's sync protocol: the device side and the server (``sync.server``)."""
