"""MySQL/MariaDB protocol: framing, codec, reply tracking and authentication."""
