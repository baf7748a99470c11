"""The trio layer: listeners, sessions, upstream connections."""
