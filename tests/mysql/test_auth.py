"""Tests of the MySQL authentication functions and the client login state machine.

Known answers are computed here from the published formulas with hashlib,
independently of pamwire.mysql.auth, and cross-checked against PyMySQL's own
implementation where it is installed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pamwire.errors import AuthenticationError
from pamwire.mysql import auth, codec, ed25519
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability

NONCE = bytes(range(0x21, 0x21 + 20))
PASSWORD = "app-secret-pw"


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# mysql_native_password --------------------------------------------------------------


def test_native_password_known_answer() -> None:
    # SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))
    stage1 = sha1(PASSWORD.encode())
    expected = xor(stage1, sha1(NONCE + sha1(stage1)))
    assert auth.native_password_scramble(PASSWORD, NONCE) == expected
    # The verifier MySQL shows as "*" + upper hex in mysql.user.
    verifier = auth.mysql_verifiers(PASSWORD)[auth.NATIVE_PASSWORD]
    assert verifier == sha1(sha1(PASSWORD.encode()))


def test_native_password_matches_mysql_password_function() -> None:
    # PASSWORD('password') in MySQL 5.x, a widely published value.
    verifier = auth.mysql_verifiers("password")[auth.NATIVE_PASSWORD]
    assert "*" + verifier.hex().upper() == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def test_native_password_verify() -> None:
    verifier = auth.mysql_verifiers(PASSWORD)[auth.NATIVE_PASSWORD]
    token = auth.native_password_scramble(PASSWORD, NONCE)
    assert auth.native_password_verify(token, NONCE, verifier)
    assert not auth.native_password_verify(token, NONCE[::-1], verifier)
    wrong = auth.native_password_scramble("other", NONCE)
    assert not auth.native_password_verify(wrong, NONCE, verifier)
    assert not auth.native_password_verify(b"", NONCE, verifier)
    assert auth.native_password_scramble("", NONCE) == b""


# caching_sha2_password --------------------------------------------------------------


def test_caching_sha2_known_answer() -> None:
    # SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce)
    stage1 = sha256(PASSWORD.encode())
    expected = xor(stage1, sha256(sha256(stage1) + NONCE))
    assert auth.caching_sha2_scramble(PASSWORD, NONCE) == expected
    verifier = auth.mysql_verifiers(PASSWORD)[auth.CACHING_SHA2_PASSWORD]
    assert verifier == sha256(sha256(PASSWORD.encode()))


def test_caching_sha2_verify_fast_path_and_full() -> None:
    verifier = auth.mysql_verifiers(PASSWORD)[auth.CACHING_SHA2_PASSWORD]
    token = auth.caching_sha2_scramble(PASSWORD, NONCE)
    assert auth.caching_sha2_verify(token, NONCE, verifier)
    assert not auth.caching_sha2_verify(token[:-1] + b"\0", NONCE, verifier)
    assert not auth.caching_sha2_verify(b"", NONCE, verifier)
    assert auth.caching_sha2_verify_password(PASSWORD.encode(), verifier)
    assert not auth.caching_sha2_verify_password(b"nope", verifier)


def test_scrambles_match_pymysql() -> None:
    pymysql_auth: Any = pytest.importorskip("pymysql._auth")
    raw = PASSWORD.encode()
    assert auth.native_password_scramble(
        PASSWORD, NONCE
    ) == pymysql_auth.scramble_native_password(raw, NONCE)
    assert auth.caching_sha2_scramble(
        PASSWORD, NONCE
    ) == pymysql_auth.scramble_caching_sha2(raw, NONCE)


def _rsa_pair() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_rsa_exchange_round_trip() -> None:
    private, public = _rsa_pair()
    secret = auth.caching_sha2_encrypt_password(PASSWORD, NONCE, public)
    assert len(secret) == 256
    assert (
        auth.caching_sha2_decrypt_password(secret, NONCE, private) == b"app-secret-pw"
    )
    # The XOR with the nonce is applied: a different nonce gives garbage.
    with pytest.raises(AuthenticationError):
        auth.caching_sha2_decrypt_password(secret, NONCE[::-1], private)
    with pytest.raises(AuthenticationError, match="unreadable"):
        auth.caching_sha2_encrypt_password(PASSWORD, NONCE, b"not a key")


def test_rsa_exchange_matches_pymysql_decryption() -> None:
    # PyMySQL encrypts the same way; our server side must read its ciphertext.
    pymysql_auth: Any = pytest.importorskip("pymysql._auth")
    private, public = _rsa_pair()
    secret = pymysql_auth.sha2_rsa_encrypt(PASSWORD.encode(), NONCE, public)
    assert (
        auth.caching_sha2_decrypt_password(secret, NONCE, private) == b"app-secret-pw"
    )


def test_new_scramble_has_no_nul_or_dollar() -> None:
    for _ in range(50):
        nonce = auth.new_scramble()
        assert len(nonce) == 20
        assert b"\0" not in nonce and b"$" not in nonce
        assert max(nonce) < 0x80


def test_auth_response_helper() -> None:
    assert auth.auth_response(
        auth.NATIVE_PASSWORD, PASSWORD, NONCE
    ) == auth.native_password_scramble(PASSWORD, NONCE)
    with pytest.raises(AuthenticationError, match="dialog"):
        auth.auth_response("dialog", PASSWORD, NONCE)
    with pytest.raises(AuthenticationError, match="20 bytes"):
        auth.auth_response(auth.CLIENT_ED25519, PASSWORD, NONCE)
    assert auth.plugin_nonce(NONCE + b"\0") == NONCE


# ClientLogin ------------------------------------------------------------------------


def _handshake(plugin: str) -> m.HandshakeV10:
    return m.HandshakeV10.build(
        server_version="8.0.36",
        connection_id=1,
        scramble=NONCE,
        capabilities=codec.SUPPORTED_CAPABILITIES | Capability.CLIENT_SSL,
        character_set=255,
        status_flags=2,
        auth_plugin_name=plugin,
    )


def _ok() -> bytes:
    return codec.encode_payload(
        m.OkPacket(status_flags=2), codec.SUPPORTED_CAPABILITIES
    )


def test_client_login_native_then_ok() -> None:
    login = auth.ClientLogin(username="app", password=PASSWORD, database="app")
    response = login.handshake_response(_handshake(auth.NATIVE_PASSWORD))
    assert response.auth_plugin_name == auth.NATIVE_PASSWORD
    assert response.auth_response == auth.native_password_scramble(PASSWORD, NONCE)
    assert response.database == "app"
    assert not login.capabilities & Capability.CLIENT_SSL
    assert login.on_server_packet(_ok()) is None
    assert login.done and login.ok is not None


def test_client_login_answers_ed25519_switch_with_signature() -> None:
    login = auth.ClientLogin(username="app", password=PASSWORD)
    login.handshake_response(_handshake(auth.NATIVE_PASSWORD))
    # 32 random bytes, no terminator: a trailing NUL belongs to the nonce.
    nonce = bytes(range(1, 32)) + b"\0"
    switch = codec.encode_payload(m.AuthSwitchRequest(auth.CLIENT_ED25519, nonce), 0)
    answer = login.on_server_packet(switch)
    assert answer == ed25519.sign(PASSWORD.encode(), nonce)
    assert login.plugin == auth.CLIENT_ED25519
    assert login.on_server_packet(_ok()) is None
    assert login.done


def test_client_login_answers_ed25519_in_handshake_with_32_byte_nonce() -> None:
    nonce = bytes(range(0x41, 0x41 + 32))
    handshake = m.HandshakeV10.build(
        server_version="5.5.5-10.11.6-MariaDB",
        connection_id=1,
        scramble=nonce,
        capabilities=codec.SUPPORTED_CAPABILITIES,
        character_set=45,
        status_flags=2,
        auth_plugin_name=auth.CLIENT_ED25519,
    )
    login = auth.ClientLogin(username="app", password=PASSWORD)
    response = login.handshake_response(handshake)
    assert response.auth_plugin_name == auth.CLIENT_ED25519
    assert response.auth_response == ed25519.sign(PASSWORD.encode(), nonce)


def test_client_login_follows_auth_switch() -> None:
    login = auth.ClientLogin(username="app", password=PASSWORD)
    login.handshake_response(_handshake("client_ed25519"))
    assert login.plugin == auth.NATIVE_PASSWORD  # answered with a supported one
    other = bytes(range(0x41, 0x55))
    switch = codec.encode_payload(
        m.AuthSwitchRequest(auth.CACHING_SHA2_PASSWORD, other + b"\0"), 0
    )
    answer = login.on_server_packet(switch)
    assert answer == auth.caching_sha2_scramble(PASSWORD, other)
    assert login.on_server_packet(b"\x01\x03") is None  # fast auth success
    assert login.on_server_packet(_ok()) is None
    assert login.done


def test_client_login_full_auth_requests_key_then_encrypts() -> None:
    private, public = _rsa_pair()
    login = auth.ClientLogin(username="app", password=PASSWORD)
    login.handshake_response(_handshake(auth.CACHING_SHA2_PASSWORD))
    assert login.on_server_packet(b"\x01\x04") == auth.REQUEST_PUBLIC_KEY
    secret = login.on_server_packet(b"\x01" + public)
    assert secret is not None
    assert (
        auth.caching_sha2_decrypt_password(secret, NONCE, private) == PASSWORD.encode()
    )


def test_client_login_full_auth_over_tls_sends_cleartext() -> None:
    login = auth.ClientLogin(username="app", password=PASSWORD, secure_transport=True)
    login.handshake_response(_handshake(auth.CACHING_SHA2_PASSWORD))
    assert login.on_server_packet(b"\x01\x04") == PASSWORD.encode() + b"\0"


def test_client_login_refused_and_unsupported() -> None:
    login = auth.ClientLogin(username="app", password="x")
    login.handshake_response(_handshake(auth.NATIVE_PASSWORD))
    err = codec.encode_payload(
        m.ErrPacket(1045, "28000", "Access denied"), codec.SUPPORTED_CAPABILITIES
    )
    with pytest.raises(auth.LoginRefused) as info:
        login.on_server_packet(err)
    assert info.value.err.error_code == 1045

    login = auth.ClientLogin(username="app", password="x")
    login.handshake_response(_handshake(auth.NATIVE_PASSWORD))
    switch = codec.encode_payload(m.AuthSwitchRequest("dialog", b"\x04Password: "), 0)
    with pytest.raises(AuthenticationError, match="'dialog'"):
        login.on_server_packet(switch)
    with pytest.raises(AuthenticationError, match="no server packet expected"):
        auth.ClientLogin(username="a", password="b").on_server_packet(switch)


def test_client_login_cleartext_only_over_secure_transport() -> None:
    login = auth.ClientLogin(username="app", password=PASSWORD)
    login.handshake_response(_handshake(auth.NATIVE_PASSWORD))
    switch = codec.encode_payload(m.AuthSwitchRequest(auth.CLEAR_PASSWORD, b""), 0)
    with pytest.raises(AuthenticationError, match="mysql_clear_password"):
        login.on_server_packet(switch)
