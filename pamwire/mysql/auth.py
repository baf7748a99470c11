"""Authentication for both MySQL legs: pure functions and one small client state class.

Toward clients pamwire checks mysql_native_password and caching_sha2_password
answers against stored verifiers; toward the server it computes the answers
(following auth switches) with ClientLogin. Nothing here touches a socket.

Theory of operation (nonce: the 20-byte scramble of the handshake or switch):

    mysql_native_password   token = SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))
    caching_sha2_password   token = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)
    client_ed25519          token = Ed25519 signature of a 32-byte nonce, keyed
                            by SHA-512(pw) (MariaDB only; upstream only, ed25519.py)

A server holding SHA1(SHA1(pw)), respectively SHA256(SHA256(pw)), XORs the
second hash out of the token and checks that hashing what remains once more
gives the stored value; so these two values are what pamwire stores per person
(mysql_verifiers). They are unsalted: they resist less guessing than SCRAM's
verifier, and whoever holds one and records a login can replay the password
hash. caching_sha2's "full authentication" sends the password itself, in
cleartext over TLS or RSA-OAEP encrypted (after XOR with the nonce) with the
server's public key over plain TCP; SHA256(SHA256(pw)) checks it as well.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from pamwire.errors import AuthenticationError, ProtocolError
from pamwire.mysql import codec, ed25519
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability

NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
CLEAR_PASSWORD = "mysql_clear_password"
CLIENT_ED25519 = ed25519.CLIENT_ED25519
# Plugins pamwire checks toward clients (it stores their verifiers).
SUPPORTED_PLUGINS = (NATIVE_PASSWORD, CACHING_SHA2_PASSWORD)
# Plugins pamwire answers toward servers.
UPSTREAM_PLUGINS = (NATIVE_PASSWORD, CACHING_SHA2_PASSWORD, CLIENT_ED25519)

# caching_sha2_password's AuthMoreData codes and the client's key request.
FAST_AUTH_SUCCESS = b"\x03"
PERFORM_FULL_AUTHENTICATION = b"\x04"
REQUEST_PUBLIC_KEY = b"\x02"

# utf8mb4_general_ci: what MariaDB and MySQL 5.7 clients announce by default.
DEFAULT_CHARACTER_SET = 45
DEFAULT_MAX_PACKET_SIZE = 1 << 24

DEFAULT_CLIENT_CAPABILITIES = int(
    Capability.CLIENT_LONG_PASSWORD
    | Capability.CLIENT_LONG_FLAG
    | Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_TRANSACTIONS
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_MULTI_STATEMENTS
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CLIENT_CONNECT_ATTRS
    | Capability.CLIENT_SESSION_TRACK
    | Capability.CLIENT_DEPRECATE_EOF
)


# -- hashes ---------------------------------------------------------------------------


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _utf8(password: str) -> bytes:
    return password.encode("utf-8")


def new_scramble() -> bytes:
    """A fresh 20-byte nonce without NUL or '$', as MySQL servers make them."""
    raw = bytearray(b & 0x7F for b in secrets.token_bytes(m.SCRAMBLE_LENGTH))
    for i, byte in enumerate(raw):
        if byte in (0, ord("$")):
            raw[i] = byte + 1
    return bytes(raw)


def plugin_nonce(data: bytes) -> bytes:
    """The nonce inside plugin data as sent (servers append a NUL to it)."""
    return data[:-1] if data.endswith(b"\0") else data


def mysql_verifiers(password: str) -> dict[str, bytes]:
    """What pamwire stores per person so it can check both MySQL methods.

    Keys are plugin names; values SHA1(SHA1(pw)) and SHA256(SHA256(pw)).
    """
    raw = _utf8(password)
    return {
        NATIVE_PASSWORD: _sha1(_sha1(raw)),
        CACHING_SHA2_PASSWORD: _sha256(_sha256(raw)),
    }


# -- mysql_native_password ------------------------------------------------------------


def native_password_scramble(password: str, nonce: bytes) -> bytes:
    """The client's token for mysql_native_password (empty for an empty password)."""
    if not password:
        return b""
    stage1 = _sha1(_utf8(password))
    return _xor(stage1, _sha1(nonce + _sha1(stage1)))


def native_password_verify(token: bytes, nonce: bytes, verifier: bytes) -> bool:
    """Check a mysql_native_password token against SHA1(SHA1(password)).

    False for a wrong password or a token of the wrong length; an empty
    password has no verifier pamwire would store, so an empty token fails.
    """
    if len(token) != 20 or len(verifier) != 20:
        return False
    stage1 = _xor(token, _sha1(nonce + verifier))
    return hmac.compare_digest(_sha1(stage1), verifier)


# -- caching_sha2_password ------------------------------------------------------------


def caching_sha2_scramble(password: str, nonce: bytes) -> bytes:
    """The client's fast-path token for caching_sha2_password (empty if no password)."""
    if not password:
        return b""
    stage1 = _sha256(_utf8(password))
    return _xor(stage1, _sha256(_sha256(stage1) + nonce))


def caching_sha2_verify(token: bytes, nonce: bytes, verifier: bytes) -> bool:
    """Check a fast-path token against SHA256(SHA256(password))."""
    if len(token) != 32 or len(verifier) != 32:
        return False
    stage1 = _xor(token, _sha256(verifier + nonce))
    return hmac.compare_digest(_sha256(stage1), verifier)


def caching_sha2_verify_password(password: bytes, verifier: bytes) -> bool:
    """Check a password sent in full authentication (NUL already removed)."""
    return hmac.compare_digest(_sha256(_sha256(password)), verifier)


def _xor_nonce(data: bytes, nonce: bytes) -> bytes:
    if not nonce:
        raise AuthenticationError("empty nonce for caching_sha2_password")
    return bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(data))


def caching_sha2_encrypt_password(
    password: str, nonce: bytes, public_key_pem: bytes
) -> bytes:
    """Encrypt (password + NUL) XOR nonce with the server's RSA key (OAEP, SHA-1).

    This is what a client sends in full authentication over plain TCP. Raises
    AuthenticationError if the key cannot be read or is not RSA.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError):
        raise AuthenticationError("server sent an unreadable public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise AuthenticationError("server public key is not an rsa key")
    plain = _xor_nonce(_utf8(password) + b"\0", nonce)
    oaep = padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
    )
    try:
        return key.encrypt(plain, oaep)
    except ValueError:
        raise AuthenticationError(
            "password too long for the server's rsa key"
        ) from None


def caching_sha2_decrypt_password(
    ciphertext: bytes, nonce: bytes, private_key_pem: bytes
) -> bytes:
    """Server side of the RSA exchange: the password bytes (without the NUL).

    Raises AuthenticationError if decryption fails or the result has no NUL.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthenticationError("private key is not an rsa key")
    oaep = padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
    )
    try:
        plain = _xor_nonce(key.decrypt(ciphertext, oaep), nonce)
    except ValueError:
        raise AuthenticationError("cannot decrypt the password") from None
    if not plain.endswith(b"\0"):
        raise AuthenticationError("decrypted password is not nul-terminated")
    return plain[:-1]


# -- answering a server ---------------------------------------------------------------


def auth_response(plugin: str, password: str, nonce: bytes) -> bytes:
    """The first answer to plugin's challenge (the auth-switch helper).

    nonce is the plugin data without a trailing NUL, except for client_ed25519,
    whose 32 random bytes are taken as sent. Raises AuthenticationError for a
    plugin pamwire cannot answer (for example MariaDB's dialog), naming it,
    or for an ed25519 nonce of the wrong length.
    """
    if plugin == NATIVE_PASSWORD:
        return native_password_scramble(password, nonce)
    if plugin == CACHING_SHA2_PASSWORD:
        return caching_sha2_scramble(password, nonce)
    if plugin == CLIENT_ED25519:
        return ed25519.client_ed25519_response(password, nonce)
    allowed = ", ".join(UPSTREAM_PLUGINS)
    raise AuthenticationError(
        f"server asks for auth plugin {plugin!r}; pamwire answers {allowed}"
    )


class LoginRefused(AuthenticationError):
    """The server answered the login with an ERR packet, kept in .err."""

    def __init__(self, err: m.ErrPacket) -> None:
        super().__init__(
            f"server refused login: {err.error_code} ({err.sql_state}) "
            f"{err.error_message}"
        )
        self.err = err


class LoginPhase(enum.Enum):
    HANDSHAKE = "handshake"
    AUTHENTICATING = "authenticating"
    AWAITING_PUBLIC_KEY = "awaiting public key"
    DONE = "done"


class ClientLogin:
    """The client side of a login, sans-IO: pamwire logging in to the server.

    Call handshake_response() with the server's HandshakeV10 and send its
    payload; then hand each server packet to on_server_packet(), send any
    payload it returns (with the next sequence id), and stop once done is true.
    """

    def __init__(
        self,
        *,
        username: str,
        password: str,
        database: str | None = None,
        capabilities: int = DEFAULT_CLIENT_CAPABILITIES,
        character_set: int = DEFAULT_CHARACTER_SET,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        connect_attrs: tuple[tuple[str, str], ...] | None = None,
        server_public_key: bytes | None = None,
        secure_transport: bool = False,
    ) -> None:
        self.username = username
        self._password = password
        self.database = database
        self._requested = capabilities & codec.SUPPORTED_CAPABILITIES
        if database is not None:
            self._requested |= int(Capability.CLIENT_CONNECT_WITH_DB)
        if connect_attrs is None:
            self._requested &= ~int(Capability.CLIENT_CONNECT_ATTRS)
        self.character_set = character_set
        self.max_packet_size = max_packet_size
        self.connect_attrs = connect_attrs
        self.server_public_key = server_public_key
        self.secure_transport = secure_transport
        self.phase = LoginPhase.HANDSHAKE
        self.capabilities = 0
        self.plugin = ""
        self.ok: m.OkPacket | None = None
        self._nonce = b""

    @property
    def done(self) -> bool:
        return self.phase is LoginPhase.DONE

    def handshake_response(self, handshake: m.HandshakeV10) -> m.HandshakeResponse41:
        """The response to the server's handshake; capabilities are negotiated here.

        Raises AuthenticationError if the server lacks CLIENT_PROTOCOL_41 or
        CLIENT_PLUGIN_AUTH (every server of the last fifteen years has both).
        """
        if self.phase is not LoginPhase.HANDSHAKE:
            raise AuthenticationError("handshake already answered")
        server = handshake.capabilities
        needed = int(Capability.CLIENT_PROTOCOL_41 | Capability.CLIENT_PLUGIN_AUTH)
        if server & needed != needed:
            raise AuthenticationError("server lacks protocol 4.1 plugin authentication")
        caps = self._requested & server
        self.capabilities = caps
        self._nonce = handshake.scramble
        plugin = handshake.auth_plugin_name
        ed25519_ready = len(self._nonce) == ed25519.NONCE_LENGTH
        if plugin not in SUPPORTED_PLUGINS and not (
            plugin == CLIENT_ED25519 and ed25519_ready
        ):
            # Answer with native password; the server switches us if it must.
            plugin = NATIVE_PASSWORD
        self.plugin = plugin
        self.phase = LoginPhase.AUTHENTICATING
        return m.HandshakeResponse41(
            capability_flags=caps & 0xFFFFFFFF,
            max_packet_size=self.max_packet_size,
            character_set=self.character_set,
            username=self.username,
            auth_response=auth_response(plugin, self._password, self._nonce),
            database=self.database if caps & codec.CONNECT_WITH_DB else None,
            auth_plugin_name=plugin,
            connect_attrs=self.connect_attrs if caps & codec.CONNECT_ATTRS else None,
        )

    def on_server_packet(self, payload: bytes | bytearray | memoryview) -> bytes | None:
        """Take one server packet of the exchange; return the payload to send, if any.

        Raises LoginRefused for an ERR packet, AuthenticationError for a plugin
        or step pamwire cannot follow, ServerProtocolError for a bad packet.
        """
        if self.phase in (LoginPhase.HANDSHAKE, LoginPhase.DONE):
            raise AuthenticationError(f"no server packet expected while {self.phase}")
        reply = codec.decode_auth_reply(payload, self.capabilities)
        if isinstance(reply, m.OkPacket):
            self.ok = reply
            self.phase = LoginPhase.DONE
            return None
        if isinstance(reply, m.ErrPacket):
            self.phase = LoginPhase.DONE
            raise LoginRefused(reply)
        if isinstance(reply, m.AuthSwitchRequest):
            self.plugin = reply.plugin_name
            if self.plugin == CLIENT_ED25519:
                # 32 random bytes with no terminator: a last NUL is nonce.
                self._nonce = reply.plugin_data
            else:
                self._nonce = plugin_nonce(reply.plugin_data)
            self.phase = LoginPhase.AUTHENTICATING
            if self.plugin == CLEAR_PASSWORD and self.secure_transport:
                return _utf8(self._password) + b"\0"
            return auth_response(self.plugin, self._password, self._nonce)
        return self._more_data(reply.data)

    def _more_data(self, data: bytes) -> bytes | None:
        if self.plugin != CACHING_SHA2_PASSWORD:
            raise AuthenticationError(
                f"unexpected more-data for plugin {self.plugin!r}"
            )
        if self.phase is LoginPhase.AWAITING_PUBLIC_KEY:
            self.server_public_key = data
            self.phase = LoginPhase.AUTHENTICATING
            return self._encrypted_password()
        if data == FAST_AUTH_SUCCESS:
            return None  # the OK packet follows
        if data != PERFORM_FULL_AUTHENTICATION:
            raise ProtocolError(f"unknown caching_sha2_password step {data[:8]!r}")
        if self.secure_transport:
            return _utf8(self._password) + b"\0"
        if self.server_public_key is None:
            self.phase = LoginPhase.AWAITING_PUBLIC_KEY
            return REQUEST_PUBLIC_KEY
        return self._encrypted_password()

    def _encrypted_password(self) -> bytes:
        key = self.server_public_key
        if key is None:
            raise AuthenticationError("no server public key for full authentication")
        return caching_sha2_encrypt_password(self._password, self._nonce, key)
