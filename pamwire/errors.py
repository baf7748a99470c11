"""The project's exception hierarchy, split by who is to blame."""

from __future__ import annotations


class PamwireError(Exception):
    """Base class of every error pamwire raises on purpose."""


class ProtocolError(PamwireError):
    """Bytes on the wire broke the protocol (bad length, unknown type, short read)."""


class MessageTooLarge(ProtocolError):
    """A message announced a length above the configured maximum."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message of {length} bytes exceeds the limit of {limit}")
        self.length = length
        self.limit = limit


class ClientProtocolError(ProtocolError):
    """The client broke the protocol."""


class ServerProtocolError(ProtocolError):
    """The upstream server broke the protocol."""


class AuthenticationError(PamwireError):
    """A login failed: wrong password, unknown person, unsupported method."""


class ConfigError(PamwireError):
    """The configuration is wrong; the message names the file and the key."""

    def __init__(
        self, message: str, *, path: str | None = None, key: str | None = None
    ):
        where = ""
        if path is not None:
            where = f"{path}: "
        if key is not None:
            where += f"{key}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.key = key
