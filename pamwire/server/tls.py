"""TLS on both legs: contexts built from the configuration, and stream upgrades.

Contexts are built once, when pamwire starts, so a missing, unreadable or
mismatched certificate or key is a configuration error before any client
connects. Error messages name the key and the file, never the key's content.

Both protocols upgrade a connection that began in plaintext (PostgreSQL's
SSLRequest, MySQL's CLIENT_SSL request packet); the callers speak the protocol,
this module only turns a stream into a trio.SSLStream and says why it failed.
Closing without close_notify counts as a plain end of stream
(https_compatible): both protocols mark their own end (Terminate, COM_QUIT).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pamwire.config import Config, Listener, Target
from pamwire.errors import ConfigError, PamwireError

# A client's or server's TLS handshake must finish within the login timeout;
# pamwire adds no limit of its own. TLS 1.0 and 1.1 are refused on both legs.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsHandshakeError(PamwireError):
    """A TLS handshake failed; the message says why (certificate, protocol)."""


@attrs.frozen
class ServerTls:
    """TLS toward clients on one listener: `allow` or `require`."""

    mode: str
    context: ssl.SSLContext

    @property
    def required(self) -> bool:
        return self.mode == "require"


@attrs.frozen
class UpstreamTls:
    """TLS toward one target's server; `context` is None when disabled."""

    mode: str = "disable"
    context: ssl.SSLContext | None = None
    server_name: str | None = None

    @property
    def wanted(self) -> bool:
        """Whether pamwire asks the server for TLS at all."""
        return self.context is not None

    @property
    def required(self) -> bool:
        """Whether a server without TLS is refused (every mode but prefer)."""
        return self.mode not in ("disable", "prefer")


NO_TLS = UpstreamTls()


def server_tls(config: Config, index: int) -> ServerTls | None:
    """The TLS of listener number `index`, or None when its tls is off.

    Raises ConfigError naming the listener's key and the file when the
    certificate or key cannot be read, is not PEM, is encrypted, or the two
    do not belong together.
    """
    listener: Listener = config.listeners[index]
    if listener.tls == "off":
        return None
    key = f"listener[{index}]"
    fpath = str(config.path)
    assert listener.tls_cert_file is not None and listener.tls_key_file is not None
    cert_path = config.resolve(listener.tls_cert_file)
    key_path = config.resolve(listener.tls_key_file)
    cert_key, key_key = f"{key}.tls_cert_file", f"{key}.tls_key_file"

    cert_pem = _read(cert_path, "certificate", fpath, cert_key)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigError(
            f"no PEM certificate in {cert_path}", path=fpath, key=cert_key
        ) from None
    key_pem = _read(key_path, "private key", fpath, key_key)
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"the private key in {key_path} is encrypted; pamwire needs it "
            "unencrypted (protect the file instead)",
            path=fpath,
            key=key_key,
        ) from None
    except Exception:  # ValueError, UnsupportedAlgorithm: say nothing of the key
        raise ConfigError(
            f"no usable PEM private key in {key_path}", path=fpath, key=key_key
        ) from None
    if _spki(chain[0].public_key()) != _spki(private.public_key()):
        raise ConfigError(
            f"the private key in {key_path} does not match the certificate "
            f"in {cert_path}",
            path=fpath,
            key=key_key,
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"cannot use {cert_path} with {key_path}: {_reason(exc)}",
            path=fpath,
            key=cert_key,
        ) from None
    return ServerTls(listener.tls, context)


def upstream_tls(config: Config, target: Target) -> UpstreamTls:
    """The TLS toward a target's server; ConfigError if its CA file is unusable."""
    if target.tls == "disable":
        return NO_TLS
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = MINIMUM_VERSION
    if target.tls in ("prefer", "require"):
        # Encrypted but unauthenticated, as libpq's sslmode of the same names.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = target.tls == "verify-full"
        context.verify_mode = ssl.CERT_REQUIRED
        if target.tls_ca_file is not None:
            ca_path = config.resolve(target.tls_ca_file)
            try:
                context.load_verify_locations(cafile=ca_path)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"cannot use CA file {ca_path}: {_reason(exc)}",
                    path=str(config.path),
                    key=f"target.{target.name}.tls_ca_file",
                ) from None
    return UpstreamTls(target.tls, context, target.tls_server_name)


def upstream_tls_by_target(config: Config) -> dict[str, UpstreamTls]:
    """upstream_tls for every target, by target name (built at start)."""
    return {
        name: upstream_tls(config, target) for name, target in config.targets.items()
    }


async def accept(
    stream: trio.abc.Stream, tls: ServerTls, *, head: bytes = b""
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the server side of a handshake over `stream`; TlsHandshakeError if it
    fails. `head` holds bytes of the client's handshake already read from the
    stream (a MySQL client starts TLS without waiting for an answer)."""
    transport = _Replayed(stream, head) if head else stream
    ssl_stream = trio.SSLStream(
        transport, tls.context, server_side=True, https_compatible=True
    )
    await _handshake(ssl_stream)
    return ssl_stream


async def connect(
    stream: trio.abc.Stream, tls: UpstreamTls, host: str
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the client side of a handshake toward a target's server;
    TlsHandshakeError if it fails (certificate not trusted, wrong name...)."""
    assert tls.context is not None
    ssl_stream = trio.SSLStream(
        stream,
        tls.context,
        server_hostname=tls.server_name or host,
        https_compatible=True,
    )
    await _handshake(ssl_stream)
    return ssl_stream


async def _handshake(ssl_stream: trio.SSLStream[trio.abc.Stream]) -> None:
    try:
        await ssl_stream.do_handshake()
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        reason = _reason(cause) if cause is not None else "connection closed"
        raise TlsHandshakeError(f"tls handshake failed: {reason}") from None


def _read(path: Path, what: str, fpath: str, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} file {path}: {exc.strerror or exc}",
            path=fpath,
            key=key,
        ) from None


def _spki(public_key: object) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key, for comparing two."""
    encoded: bytes = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def _no_password() -> str:
    # Never prompt on the terminal for an encrypted key (checked above anyway).
    raise ConfigError("the private key is encrypted")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return str(exc) or type(exc).__name__


class _Replayed(trio.abc.Stream):
    """A stream whose first reads return bytes already taken from it."""

    def __init__(self, stream: trio.abc.Stream, head: bytes) -> None:
        self._stream = stream
        self._head = head

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._head:
            return bytes(await self._stream.receive_some(max_bytes))
        await trio.lowlevel.checkpoint()
        size = len(self._head) if max_bytes is None else max_bytes
        data, self._head = self._head[:size], self._head[size:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()
