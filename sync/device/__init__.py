"""The device side of sync: outbox push, master pull, image upload, scheduler and status API."""
