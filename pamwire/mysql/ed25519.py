"""Ed25519 signing (RFC 8032 §5.1) over a secret of any length, for client_ed25519.

MariaDB's ed25519 plugin keys a user by the password itself: the signing
scalar and nonce prefix come from SHA-512 of the password bytes, whatever
their length, where RFC 8032 hashes a 32-byte seed. For a 32-byte secret the
two agree, so the RFC's test vectors check this code. Library APIs take only
32-byte seeds, hence this small implementation.

Theory of operation: points are kept in extended twisted Edwards coordinates
(X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z, so adding needs no inversion;
one inversion happens when a point is encoded. Python integers are not
constant-time: the timing of signing may tell an observer on this machine
something about the password. The password is already in pamwire's memory,
so this is accepted.
"""

from __future__ import annotations

import hashlib
from typing import Final

from pamwire.errors import AuthenticationError

# Field prime, group order and curve constant d = -121665/121666 (RFC 8032 §5.1).
P: Final = 2**255 - 19
L: Final = 2**252 + 27742317777372353535851937790883648493
D: Final = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1: Final = pow(2, (P - 1) // 4, P)

SIGNATURE_LENGTH: Final = 64
PUBLIC_KEY_LENGTH: Final = 32

_Point = tuple[int, int, int, int]
_IDENTITY: Final[_Point] = (0, 1, 1, 0)


def _recover_x(y: int, sign: int) -> int:
    """The x with the given low bit on the curve at y (RFC 8032 §5.1.3)."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
    if (v * x * x - u) % P != 0 or (x == 0 and sign):
        raise ValueError("not a curve point")
    return P - x if x & 1 != sign else x


_BY: Final = 4 * pow(5, P - 2, P) % P
_BX: Final = _recover_x(_BY, 0)
BASE: Final[_Point] = (_BX, _BY, 1, _BX * _BY % P)


def _add(a: _Point, b: _Point) -> _Point:
    """Unified addition in extended coordinates (RFC 8032 §5.1.4)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e1 = (y1 - x1) * (y2 - x2) % P
    e2 = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = e2 - e1, dd - c, dd + c, e2 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar: int, point: _Point) -> _Point:
    """scalar * point by double-and-add over the scalar's bits."""
    result = _IDENTITY
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _encode(point: _Point) -> bytes:
    """y in 255 bits little-endian, the low bit of x in the top bit (§5.1.2)."""
    x, y, z, _ = point
    inverse = pow(z, P - 2, P)
    x, y = x * inverse % P, y * inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(secret: bytes) -> tuple[int, bytes]:
    """The clamped signing scalar and the nonce prefix from SHA-512(secret)."""
    digest = hashlib.sha512(secret).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8  # clear the 3 low bits and bit 255
    scalar |= 1 << 254
    return scalar, digest[32:]


def public_key(secret: bytes) -> bytes:
    """The 32-byte public key of secret (any length; RFC 8032 for 32 bytes)."""
    scalar, _ = _expand(secret)
    return _encode(_multiply(scalar, BASE))


def sign(secret: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature R || S of message under secret."""
    scalar, prefix = _expand(secret)
    encoded_a = _encode(_multiply(scalar, BASE))
    r = _sha512_int(prefix, message) % L
    encoded_r = _encode(_multiply(r, BASE))
    k = _sha512_int(encoded_r, encoded_a, message) % L
    s = (r + k * scalar) % L
    return encoded_r + s.to_bytes(32, "little")


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Check a signature (RFC 8032 §5.1.7, cofactorless); False if it fails.

    pamwire only signs; this is here so tests can check signatures of
    passwords longer than 32 bytes, which no library signs.
    """
    if len(public) != PUBLIC_KEY_LENGTH or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        a = _decode(public)
        r = _decode(signature[:32])
    except ValueError:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = _sha512_int(signature[:32], public, message) % L
    left = _multiply(s, BASE)
    right = _add(r, _multiply(k, a))
    return _encode(left) == _encode(right)


def _decode(data: bytes) -> _Point:
    value = int.from_bytes(data, "little")
    y = value & ((1 << 255) - 1)
    if y >= P:
        raise ValueError("not a curve point")
    x = _recover_x(y, value >> 255)
    return (x, y, 1, x * y % P)


# -- MariaDB's client_ed25519 ---------------------------------------------------------

CLIENT_ED25519: Final = "client_ed25519"
# The plugin's nonce: exactly 32 random bytes (any of which may be NUL).
NONCE_LENGTH: Final = 32


def client_ed25519_response(password: str, nonce: bytes) -> bytes:
    """What client_ed25519 answers to the server's nonce: sign(password, nonce).

    Raises AuthenticationError if the nonce is not 32 bytes long.
    """
    if len(nonce) != NONCE_LENGTH:
        raise AuthenticationError(
            f"client_ed25519 nonce has {len(nonce)} bytes, expected {NONCE_LENGTH}"
        )
    return sign(password.encode("utf-8"), nonce)
