"""Tests of the Ed25519 signer behind MariaDB's client_ed25519 plugin.

RFC 8032 §7.1's vectors check the 32-byte case; the cryptography package
(OpenSSL) checks random 32-byte secrets; longer passwords, which no library
signs, are checked by verifying with this module and against MariaDB's own
public key in tests/integration/test_mysql_ed25519.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.errors import AuthenticationError
from pamwire.mysql import ed25519

# RFC 8032 §7.1 TEST 1, 2 and 3: (secret, public key, message, signature).
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590"
        "a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e"
        "15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d"
        "16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032_VECTORS)
def test_ed25519_matches_rfc8032_vectors(
    secret: str, public: str, message: str, signature: str
) -> None:
    key = bytes.fromhex(secret)
    assert ed25519.public_key(key).hex() == public
    assert ed25519.sign(key, bytes.fromhex(message)).hex() == signature
    assert ed25519.verify(
        bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    )


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), message=st.binary(max_size=64))
def test_ed25519_agrees_with_openssl_for_32_byte_secrets(
    secret: bytes, message: bytes
) -> None:
    openssl = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization

    key = openssl.Ed25519PrivateKey.from_private_bytes(secret)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert ed25519.public_key(secret) == key.public_key().public_bytes(*raw)
    assert ed25519.sign(secret, message) == key.sign(message)


@settings(max_examples=20, deadline=None)
@given(password=st.binary(max_size=100), nonce=st.binary(min_size=32, max_size=32))
def test_ed25519_signature_of_any_length_secret_verifies(
    password: bytes, nonce: bytes
) -> None:
    signature = ed25519.sign(password, nonce)
    public = ed25519.public_key(password)
    assert len(signature) == ed25519.SIGNATURE_LENGTH
    assert ed25519.verify(public, nonce, signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not ed25519.verify(public, nonce, flipped)
    assert not ed25519.verify(public, nonce + b"x", signature)


def test_ed25519_verify_refuses_bad_lengths_and_points() -> None:
    public = ed25519.public_key(b"pw")
    signature = ed25519.sign(b"pw", b"m")
    assert not ed25519.verify(public[:31], b"m", signature)
    assert not ed25519.verify(public, b"m", signature[:63])
    # y = p is out of range: not a point encoding.
    bad = (ed25519.P).to_bytes(32, "little")
    assert not ed25519.verify(bad, b"m", signature)
    big_s = signature[:32] + (ed25519.L).to_bytes(32, "little")
    assert not ed25519.verify(public, b"m", big_s)


def test_client_ed25519_response_signs_the_nonce_with_the_password() -> None:
    nonce = bytes(range(32))
    answer = ed25519.client_ed25519_response("pässword", nonce)
    assert answer == ed25519.sign("pässword".encode(), nonce)
    assert ed25519.verify(ed25519.public_key("pässword".encode()), nonce, answer)


def test_client_ed25519_response_refuses_a_short_nonce() -> None:
    with pytest.raises(AuthenticationError, match="31 bytes"):
        ed25519.client_ed25519_response("pw", bytes(31))
