"""Authentication for both PostgreSQL legs as pure functions and small state classes.

pamwire is the SCRAM-SHA-256 server toward the client and answers SCRAM-SHA-256,
MD5 or cleartext toward the upstream server; nothing here touches a socket.

Theory of operation (RFC 5802 section 3, with SHA-256 as RFC 7677 asks):

    SaltedPassword  = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations)
    ClientKey       = HMAC(SaltedPassword, "Client Key")
    StoredKey       = SHA-256(ClientKey)
    ServerKey       = HMAC(SaltedPassword, "Server Key")
    AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
    ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
    ServerSignature = HMAC(ServerKey, AuthMessage)

The server keeps only (iterations, salt, StoredKey, ServerKey), the verifier. It
recovers ClientKey from the proof and checks that its hash is StoredKey, so it
never needs the password, and the verifier alone does not let anyone log in.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from collections.abc import Iterable

import attrs

from pamwire.errors import AuthenticationError

# PostgreSQL's default for scram_iterations (and the only value before PostgreSQL
# 16). Verifiers made with it look like the ones PostgreSQL makes itself, and the
# cost (about 2 ms per PBKDF2) is paid only when a password is set or, on the
# upstream leg, once per login.
SCRAM_ITERATIONS = 4096

# Salt and nonce sizes are PostgreSQL's (SCRAM_DEFAULT_SALT_LEN, SCRAM_RAW_NONCE_LEN).
SCRAM_SALT_LENGTH = 16
SCRAM_NONCE_LENGTH = 18
SCRAM_KEY_LENGTH = 32
SCRAM_MECHANISM = "SCRAM-SHA-256"

# Upper bound on the iteration count an upstream server may ask of us. PBKDF2
# costs about 0.5 µs per iteration here, so this caps one login at about half a
# second of CPU instead of letting a misconfigured server stall the proxy.
MAX_UPSTREAM_ITERATIONS = 1_000_000

# Largest iteration count PostgreSQL accepts in a stored verifier (INT_MAX).
_MAX_VERIFIER_ITERATIONS = 2**31 - 1

_AUTH_FAILED = "password authentication failed"

# Secret of this process for fake verifiers of unknown persons; see ScramServer.
_MOCK_SECRET = secrets.token_bytes(32)


# -- small helpers ------------------------------------------------------------------


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Decode strict base64; AuthenticationError naming `what` if it is not."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError(f"malformed base64 in {what}") from None


def _decode_message(data: bytes, what: str) -> str:
    """Decode a SCRAM message: UTF-8 without NUL (PostgreSQL reads C strings)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuthenticationError(f"{what} is not valid utf-8") from None
    if "\x00" in text:
        raise AuthenticationError(f"{what} contains a nul byte")
    return text


def _is_printable_nonce(text: str) -> bool:
    # RFC 5802 section 7: printable = %x21-2B / %x2D-7E, i.e. visible ASCII but ",".
    return bool(text) and all("!" <= c <= "~" and c != "," for c in text)


def _new_nonce() -> str:
    return _b64encode(secrets.token_bytes(SCRAM_NONCE_LENGTH))


def _check_nonce(nonce: bytes) -> str:
    text = nonce.decode("ascii", errors="replace")
    if not _is_printable_nonce(text):
        raise AuthenticationError(f"nonce {nonce!r} is not printable ascii without ','")
    return text


def _attribute(part: str, name: str, what: str) -> str:
    """Return the value of `name=value`, or AuthenticationError naming `what`."""
    if not part.startswith(name + "="):
        raise AuthenticationError(f"expected attribute {name!r} in {what}")
    return part[2:]


def _check_extensions(parts: Iterable[str], what: str) -> None:
    # RFC 5802 section 7: attr-val = ALPHA "=" value; unknown ones are ignored.
    for part in parts:
        if not (part[:1].isascii() and part[:1].isalpha() and part[1:2] == "="):
            raise AuthenticationError(f"malformed attribute in {what}")


def _escape_saslname(name: str) -> str:
    # RFC 5802 section 5.1: "," and "=" in a name are written "=2C" and "=3D".
    return name.replace("=", "=3D").replace(",", "=2C")


# -- SASLprep -----------------------------------------------------------------------


def _is_prohibited(char: str) -> bool:
    # RFC 4013 section 2.3 (prohibited output) and 2.5 (unassigned code points).
    return (
        stringprep.in_table_c12(char)
        or stringprep.in_table_c21_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
        or stringprep.in_table_a1(char)
    )


def saslprep_password(password: str) -> bytes:
    """Return the bytes SCRAM hashes for `password`, as PostgreSQL prepares them.

    PostgreSQL applies RFC 4013 best-effort: pure ASCII is used as is, and when the
    profile rejects a password (prohibited or unassigned characters, bad bidi, or
    nothing left after mapping) the raw UTF-8 bytes are used instead. Like
    PostgreSQL, the checks look at the mapped text before normalisation. Raises
    AuthenticationError only if the string cannot be encoded as UTF-8.
    """
    try:
        raw = password.encode("utf-8")
    except UnicodeEncodeError:
        raise AuthenticationError("password is not valid unicode") from None
    if raw.isascii():
        return raw

    # Step 1, map: non-ASCII spaces (C.1.2) become SPACE, then table B.1 maps to
    # nothing. U+200B is in both tables; PostgreSQL tests C.1.2 first, so do we.
    mapped = [
        " " if stringprep.in_table_c12(c) else c
        for c in password
        if stringprep.in_table_c12(c) or not stringprep.in_table_b1(c)
    ]
    if not mapped:
        return raw

    # Step 3, prohibit; step 4, bidi (RFC 3454 section 6).
    if any(_is_prohibited(c) for c in mapped):
        return raw
    if any(stringprep.in_table_d1(c) for c in mapped):
        if any(stringprep.in_table_d2(c) for c in mapped):
            return raw
        if not (
            stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])
        ):
            return raw

    # Step 2, normalise with NFKC.
    return unicodedata.normalize("NFKC", "".join(mapped)).encode("utf-8")


# -- verifiers ----------------------------------------------------------------------


def _check_key(
    instance: object, attribute: attrs.Attribute[bytes], value: bytes
) -> None:
    if len(value) != SCRAM_KEY_LENGTH:
        raise ValueError(f"{attribute.name} must be {SCRAM_KEY_LENGTH} bytes")


@attrs.frozen
class ScramVerifier:
    """What the server stores for one password; the keys are left out of repr.

    The constructor raises ValueError for impossible fields (a programming error);
    use from_string for text from a store.
    """

    iterations: int = attrs.field(validator=attrs.validators.ge(1))
    salt: bytes = attrs.field(validator=attrs.validators.min_len(1))
    stored_key: bytes = attrs.field(repr=False, validator=_check_key)
    server_key: bytes = attrs.field(repr=False, validator=_check_key)

    def to_string(self) -> str:
        """Return PostgreSQL's pg_authid.rolpassword form of this verifier."""
        return (
            f"{SCRAM_MECHANISM}${self.iterations}:{_b64encode(self.salt)}"
            f"${_b64encode(self.stored_key)}:{_b64encode(self.server_key)}"
        )

    @classmethod
    def from_string(cls, text: str) -> ScramVerifier:
        """Parse PostgreSQL's form; AuthenticationError if it is malformed.

        The message never repeats the text, which is secret.
        """
        mechanism, _, rest = text.partition("$")
        iterations_salt, _, keys = rest.partition("$")
        iterations_text, _, salt_text = iterations_salt.partition(":")
        stored_text, _, server_text = keys.partition(":")
        if mechanism != SCRAM_MECHANISM:
            raise AuthenticationError(f"verifier is not {SCRAM_MECHANISM}")

        what = "scram verifier"
        if not (
            iterations_text.isascii()
            and iterations_text.isdecimal()
            and len(iterations_text) <= 10
        ):
            raise AuthenticationError(f"malformed iteration count in {what}")
        iterations = int(iterations_text)
        if not 1 <= iterations <= _MAX_VERIFIER_ITERATIONS:
            raise AuthenticationError(f"iteration count {iterations} out of range")

        salt = _b64decode(salt_text, what)
        stored_key = _b64decode(stored_text, what)
        server_key = _b64decode(server_text, what)
        if not salt:
            raise AuthenticationError(f"empty salt in {what}")
        if len(stored_key) != SCRAM_KEY_LENGTH or len(server_key) != SCRAM_KEY_LENGTH:
            raise AuthenticationError(
                f"keys of {what} are not {SCRAM_KEY_LENGTH} bytes"
            )
        return cls(iterations, salt, stored_key, server_key)


def _salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    prepared = saslprep_password(password)
    return hashlib.pbkdf2_hmac("sha256", prepared, salt, iterations)


def make_scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> ScramVerifier:
    """Derive the verifier PostgreSQL would store for `password`.

    A random 16-byte salt is drawn unless one is given. Raises ValueError for an
    iteration count below 1 or an empty salt.
    """
    if salt is None:
        salt = secrets.token_bytes(SCRAM_SALT_LENGTH)
    if iterations < 1:
        raise ValueError(f"iteration count must be at least 1, not {iterations}")
    salted = _salted_password(password, salt, iterations)
    stored_key = _sha256(_hmac(salted, b"Client Key"))
    server_key = _hmac(salted, b"Server Key")
    return ScramVerifier(iterations, salt, stored_key, server_key)


def mock_scram_verifier(user: str, *, secret: bytes | None = None) -> ScramVerifier:
    """Return a fake verifier for an unknown person, stable for a name and secret.

    The same name always gets the same salt within a process (as PostgreSQL's mock
    authentication does), so repeated probes cannot tell a real salt from a fake.
    """
    key = _MOCK_SECRET if secret is None else secret
    seed = _hmac(
        key, b"pamwire scram mock\x00" + user.encode("utf-8", "backslashreplace")
    )
    return ScramVerifier(
        SCRAM_ITERATIONS,
        _hmac(seed, b"salt")[:SCRAM_SALT_LENGTH],
        _hmac(seed, b"stored key"),
        _hmac(seed, b"server key"),
    )


# -- server side, toward the client -------------------------------------------------


class ScramServerPhase(enum.Enum):
    """What a ScramServer waits for next."""

    CLIENT_FIRST = "client-first-message"
    CLIENT_FINAL = "client-final-message"
    DONE = "authenticated"
    FAILED = "failed"


class ScramServer:
    """One server-side SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), no channel binding.

    `verifier` None means the person is unknown: the exchange then runs on a fake
    verifier derived from `user` and a per-process secret (or `mock_secret`), so
    neither the messages nor the work done reveal whether the person exists, and
    it always fails at the end with the same error as a wrong password.

    The user name inside client-first-message is ignored, as PostgreSQL does: the
    person is the one named in the startup packet, and the caller picks the verifier.
    Any error leaves the exchange in phase FAILED; later calls raise again.
    """

    mechanism = SCRAM_MECHANISM

    def __init__(
        self,
        verifier: ScramVerifier | None,
        *,
        nonce: bytes | None = None,
        user: str = "",
        mock_secret: bytes | None = None,
    ) -> None:
        self._known = verifier is not None
        if verifier is None:
            verifier = mock_scram_verifier(user, secret=mock_secret)
        self._verifier = verifier
        self._server_nonce = _new_nonce() if nonce is None else _check_nonce(nonce)
        self.phase = ScramServerPhase.CLIENT_FIRST

        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def authenticated(self) -> bool:
        """True once client_final accepted the proof."""
        return self.phase is ScramServerPhase.DONE

    def _expect(self, phase: ScramServerPhase) -> None:
        # Pessimistic: only a step that finishes without error moves the phase on.
        current, self.phase = self.phase, ScramServerPhase.FAILED
        if current is not phase:
            raise AuthenticationError(
                f"unexpected {phase.value} in phase {current.value}"
            )

    def client_first(self, data: bytes) -> bytes:
        """Take client-first-message, return server-first-message.

        Raises AuthenticationError for channel binding ("p="), an authorization
        identity, a mandatory extension or any malformed input.
        """
        self._expect(ScramServerPhase.CLIENT_FIRST)
        what = "client-first-message"
        text = _decode_message(data, what)

        # gs2-header = gs2-cbind-flag "," [authzid] ","
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag.startswith("p="):
            raise AuthenticationError("scram channel binding is not supported")
        if flag not in ("n", "y"):
            raise AuthenticationError(f"malformed gs2 header in {what}")
        if authzid:
            raise AuthenticationError("scram authorization identity is not supported")
        self._gs2_header = f"{flag},,"

        # client-first-message-bare = [reserved-mext ","] username "," nonce [",", ext]
        parts = bare.split(",")
        if parts[0].startswith("m="):
            raise AuthenticationError("mandatory scram extension is not supported")
        if len(parts) < 2:
            raise AuthenticationError(f"missing nonce in {what}")
        _attribute(parts[0], "n", what)
        client_nonce = _attribute(parts[1], "r", what)
        if not _is_printable_nonce(client_nonce):
            raise AuthenticationError(f"malformed nonce in {what}")
        _check_extensions(parts[2:], what)

        self._client_first_bare = bare
        self._nonce = client_nonce + self._server_nonce
        self._server_first = (
            f"r={self._nonce},s={_b64encode(self._verifier.salt)}"
            f",i={self._verifier.iterations}"
        )
        self.phase = ScramServerPhase.CLIENT_FINAL
        return self._server_first.encode("ascii")

    def client_final(self, data: bytes) -> bytes:
        """Check the proof in client-final-message; return server-final-message.

        A wrong proof, a nonce mismatch or an unknown person raise
        AuthenticationError("password authentication failed"); malformed input
        raises AuthenticationError with a description.
        """
        self._expect(ScramServerPhase.CLIENT_FINAL)
        what = "client-final-message"
        text = _decode_message(data, what)

        # client-final-message = "c=" cbind "," "r=" nonce ["," ext] "," "p=" proof
        parts = text.split(",")
        if len(parts) < 3:
            raise AuthenticationError(f"malformed {what}")
        binding = _b64decode(_attribute(parts[0], "c", what), what)
        nonce = _attribute(parts[1], "r", what)
        _check_extensions(parts[2:-1], what)
        proof = _b64decode(_attribute(parts[-1], "p", what), what)
        if binding != self._gs2_header.encode("ascii"):
            raise AuthenticationError(f"channel binding data does not match in {what}")
        if len(proof) != SCRAM_KEY_LENGTH:
            raise AuthenticationError(f"malformed proof in {what}")
        if nonce != self._nonce:
            raise AuthenticationError(_AUTH_FAILED)

        without_proof = text[: len(text) - len(parts[-1]) - 1]
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        client_key = _xor(proof, _hmac(self._verifier.stored_key, auth_message))
        proof_ok = hmac.compare_digest(_sha256(client_key), self._verifier.stored_key)
        if not (proof_ok and self._known):
            raise AuthenticationError(_AUTH_FAILED)

        signature = _hmac(self._verifier.server_key, auth_message)
        self.phase = ScramServerPhase.DONE
        return f"v={_b64encode(signature)}".encode("ascii")


# -- client side, toward the upstream server ----------------------------------------


def choose_sasl_mechanism(offered: Iterable[str]) -> str:
    """Pick the mechanism to answer AuthenticationSASL with.

    Raises AuthenticationError if SCRAM-SHA-256 is not among `offered` (for
    example when the server insists on SCRAM-SHA-256-PLUS).
    """
    offered = list(offered)
    if SCRAM_MECHANISM in offered:
        return SCRAM_MECHANISM
    raise AuthenticationError(
        f"upstream offers sasl mechanisms {offered!r}; "
        f"pamwire supports {SCRAM_MECHANISM}"
    )


class ScramClientPhase(enum.Enum):
    """What a ScramClient does or waits for next."""

    CLIENT_FIRST = "client-first-message"
    SERVER_FIRST = "server-first-message"
    SERVER_FINAL = "server-final-message"
    DONE = "authenticated"
    FAILED = "failed"


class ScramClient:
    """One client-side SCRAM-SHA-256 exchange toward upstream, no channel binding.

    server_first runs PBKDF2 with the iteration count the server asks for (about
    2 ms at 4096). Every method raises AuthenticationError on malformed or wrong
    input and leaves the exchange in phase FAILED.
    """

    # TODO(scram-plus): answer SCRAM-SHA-256-PLUS (tls-server-end-point) when the
    # upstream leg runs TLS, so upstreams with channel_binding=require work; the
    # session would pass the server certificate's hash in.
    # TODO(perf): cache SaltedPassword per (password, salt, iterations); a minted
    # account logs in many times with the same salt, and PBKDF2 dominates login cost.

    mechanism: str = SCRAM_MECHANISM

    def __init__(self, user: str, password: str, *, nonce: bytes | None = None) -> None:
        self._user = user
        self._password = password
        self._client_nonce = _new_nonce() if nonce is None else _check_nonce(nonce)
        self.phase = ScramClientPhase.CLIENT_FIRST

        self._gs2_header = "n,,"
        self._client_first_bare = ""
        self._server_signature = b""

    @property
    def authenticated(self) -> bool:
        """True once server_final verified the server's signature."""
        return self.phase is ScramClientPhase.DONE

    def _expect(self, phase: ScramClientPhase) -> None:
        # Pessimistic: only a step that finishes without error moves the phase on.
        current, self.phase = self.phase, ScramClientPhase.FAILED
        if current is not phase:
            raise AuthenticationError(
                f"unexpected {phase.value} in phase {current.value}"
            )

    def client_first(self) -> bytes:
        """Return client-first-message (gs2 flag "n": no channel binding)."""
        self._expect(ScramClientPhase.CLIENT_FIRST)
        # PostgreSQL ignores this name and uses the startup packet's user.
        self._client_first_bare = (
            f"n={_escape_saslname(self._user)},r={self._client_nonce}"
        )
        self.phase = ScramClientPhase.SERVER_FIRST
        return (self._gs2_header + self._client_first_bare).encode("utf-8")

    def server_first(self, data: bytes) -> bytes:
        """Take server-first-message, return client-final-message with the proof."""
        self._expect(ScramClientPhase.SERVER_FIRST)
        what = "server-first-message"
        text = _decode_message(data, what)

        # server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
        parts = text.split(",")
        if parts[0].startswith("m="):
            raise AuthenticationError("mandatory scram extension is not supported")
        if len(parts) < 3:
            raise AuthenticationError(f"malformed {what}")
        nonce = _attribute(parts[0], "r", what)
        salt = _b64decode(_attribute(parts[1], "s", what), what)
        iterations_text = _attribute(parts[2], "i", what)
        _check_extensions(parts[3:], what)
        if not (nonce.startswith(self._client_nonce) and _is_printable_nonce(nonce)):
            raise AuthenticationError(f"server nonce does not extend ours in {what}")
        if len(nonce) == len(self._client_nonce):
            raise AuthenticationError(f"server nonce is empty in {what}")
        if not salt:
            raise AuthenticationError(f"empty salt in {what}")
        iterations = self._parse_iterations(iterations_text)

        salted = _salted_password(self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c={_b64encode(self._gs2_header.encode('ascii'))},r={nonce}"
        auth_message = ",".join((self._client_first_bare, text, without_proof)).encode(
            "utf-8"
        )
        proof = _xor(client_key, _hmac(_sha256(client_key), auth_message))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)

        self.phase = ScramClientPhase.SERVER_FINAL
        return f"{without_proof},p={_b64encode(proof)}".encode("ascii")

    @staticmethod
    def _parse_iterations(text: str) -> int:
        if not (text.isascii() and text.isdecimal() and len(text) <= 10):
            raise AuthenticationError(f"malformed iteration count {text!r}")
        iterations = int(text)
        if not 1 <= iterations <= MAX_UPSTREAM_ITERATIONS:
            raise AuthenticationError(
                f"iteration count {iterations} outside 1..{MAX_UPSTREAM_ITERATIONS}"
            )
        return iterations

    def server_final(self, data: bytes) -> None:
        """Verify the server's signature; AuthenticationError if it is wrong."""
        self._expect(ScramClientPhase.SERVER_FINAL)
        what = "server-final-message"
        text = _decode_message(data, what)

        # server-final-message = (server-error / verifier) ["," extensions]
        first = text.split(",")[0]
        if first.startswith("e="):
            raise AuthenticationError(f"upstream scram error {first[2:]!r}")
        signature = _b64decode(_attribute(first, "v", what), what)
        if not hmac.compare_digest(signature, self._server_signature):
            raise AuthenticationError("upstream server signature does not match")
        self.phase = ScramClientPhase.DONE


# -- MD5 and cleartext, toward the upstream server -----------------------------------


def md5_password_response(user: str, password: str, salt: bytes) -> bytes:
    """Answer AuthenticationMD5Password, without the trailing NUL.

    The answer is "md5" + md5(md5(password + user).hex + salt).hex. Raises
    AuthenticationError if the salt is not the 4 bytes the protocol sends.
    """
    if len(salt) != 4:
        raise AuthenticationError(f"md5 salt must be 4 bytes, not {len(salt)}")
    # usedforsecurity=False: the protocol fixes MD5; FIPS builds would refuse it.
    inner = hashlib.md5(
        password.encode("utf-8") + user.encode("utf-8"), usedforsecurity=False
    ).hexdigest()
    outer = hashlib.md5(inner.encode("ascii") + salt, usedforsecurity=False).hexdigest()
    return b"md5" + outer.encode("ascii")


def cleartext_password_response(password: str) -> bytes:
    """Answer AuthenticationCleartextPassword, without the trailing NUL.

    Raises AuthenticationError if the password holds a NUL, which the protocol's
    C string cannot carry.
    """
    if "\x00" in password:
        raise AuthenticationError("password contains a nul byte")
    return password.encode("utf-8")
