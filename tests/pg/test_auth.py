"""Tests of SCRAM-SHA-256, MD5 and cleartext authentication for PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pamwire.errors import AuthenticationError
from pamwire.pg import auth
from pamwire.pg.auth import (
    MAX_UPSTREAM_ITERATIONS,
    SCRAM_ITERATIONS,
    ScramClient,
    ScramServer,
    ScramServerPhase,
    ScramVerifier,
    choose_sasl_mechanism,
    cleartext_password_response,
    make_scram_verifier,
    md5_password_response,
    saslprep_password,
)

AUTH_FAILED = r"^password authentication failed$"

# RFC 7677 section 3: user "user", password "pencil".
RFC_CLIENT_NONCE = b"rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

# Verifiers PostgreSQL 15.18 stored for these passwords (ALTER ROLE ... PASSWORD
# 'plain text', then SELECT rolpassword FROM pg_authid). They pin SASLprep down.
POSTGRES_VERIFIERS = {
    "s3cret pw": (
        "SCRAM-SHA-256$4096:tVp+92/OzvtwloTMIC20EQ==$"
        "5H/NHIzuDXSrUlKaZ7VVdF8osFmkEmTaXFtaKhZ6es8=:"
        "wwR8S2DTxTkKOsk5DVcb2DvBh5xnNcJhLDeCOVj7O1E="
    ),
    # soft hyphen dropped, ligature and no-break space normalised
    "pa\u00adss\ufb01\u00a0word": (
        "SCRAM-SHA-256$4096:ZjYY9Oi8i36tqJtYV4xKiA==$"
        "cQ+aUCAneRFZILR8yrIP0tKuyMr6oVMQghB4xI7ZGLU=:"
        "fdXVHCx9Q9sfu7pfpB4om3mKo9SOP5QAWhXdTuvXBqw="
    ),
    # a control character: prohibited, so the raw bytes are hashed
    "\u00e9t\u00e9\x07": (
        "SCRAM-SHA-256$4096:bFqKuh1XF0+srJMJtGM8lg==$"
        "Oc8yKKdmWWGJ5+k79ONMnWzJzsNTx5tnRA8UvrY0yX4=:"
        "0sX7by9S8pdpGl1XcDzHKKlmC2zZjql1Zp53YuMqUUo="
    ),
    # Hebrew letter followed by Latin ones: bidi rule fails, raw bytes
    "\u05d0abc": (
        "SCRAM-SHA-256$4096:Enaql+Sm83/bhYVHcpMb1w==$"
        "9t4z/khYyCtRDO2UoJNJcjolr7fAMKjKexdlxtNZB3s=:"
        "MeC88LOcpgu41nXRJo1AObiIy0ZXe8Y5iK3YYUPPK9Q="
    ),
    # U+0221 was unassigned in Unicode 3.2: raw bytes
    "\u0221x\u00e9": (
        "SCRAM-SHA-256$4096:BOTs9UbkCEl+zAxv1Fgxvw==$"
        "+f7sp1qwUx+8CSGsUswfheJ2zRNZIWHf+W0QDpv2n7Q=:"
        "UkWCEmQyEq7Zg3zGxatGq86ItTGNKRswSNPWoV54kOg="
    ),
    # U+200B is a non-ASCII space before it is "mapped to nothing": one space
    "\u00ad\u200b": (
        "SCRAM-SHA-256$4096:OZFBggmuq2pEHRpdbFTKDg==$"
        "lFAX+AfmVHHTSFScICfmMLqpFhNGMOBIMVJBYk8x4uI=:"
        "b+AFD/PlDyIBAtnZkyDqquIoQX5tgR04zLwZKhuNtbk="
    ),
    # nothing left after mapping
    "\u00ad\u00ad": (
        "SCRAM-SHA-256$4096:yJRINTFUyImakBvuj496oQ==$"
        "B1EDke/mtps+tYrln1hzlqMUDwrgpsB3eRfia3y2WNU=:"
        "B96IpXZ1bTjho/XSG0o8bcd7Zm1jBBuw/7J2G64UR84="
    ),
}


def exchange(
    server: ScramServer, client: ScramClient
) -> tuple[bytes, bytes, bytes, bytes]:
    client_first = client.client_first()
    server_first = server.client_first(client_first)
    client_final = client.server_first(server_first)
    server_final = server.client_final(client_final)
    client.server_final(server_final)
    return client_first, server_first, client_final, server_final


# -- published vectors --------------------------------------------------------------


def test_scram_client_rfc7677_vector() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)

    assert client.client_first() == RFC_CLIENT_FIRST
    assert client.server_first(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.server_final(RFC_SERVER_FINAL)
    assert client.authenticated


def test_scram_server_rfc7677_vector() -> None:
    verifier = make_scram_verifier("pencil", salt=RFC_SALT, iterations=4096)
    server = ScramServer(verifier, nonce=RFC_SERVER_NONCE)

    assert server.client_first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.client_final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.authenticated


def test_scram_client_rfc7677_wrong_server_signature() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.client_first()
    client.server_first(RFC_SERVER_FIRST)
    forged = b"v=" + base64.b64encode(bytes(32))

    with pytest.raises(AuthenticationError, match="signature"):
        client.server_final(forged)
    assert not client.authenticated


def test_scram_client_rfc7677_server_error_attribute() -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.client_first()
    client.server_first(RFC_SERVER_FIRST)

    with pytest.raises(AuthenticationError, match="invalid-proof"):
        client.server_final(b"e=invalid-proof")


@pytest.mark.parametrize("password", sorted(POSTGRES_VERIFIERS))
def test_make_scram_verifier_matches_postgres(password: str) -> None:
    expected = ScramVerifier.from_string(POSTGRES_VERIFIERS[password])

    made = make_scram_verifier(
        password, salt=expected.salt, iterations=expected.iterations
    )

    assert made == expected
    assert made.to_string() == POSTGRES_VERIFIERS[password]


def test_md5_password_response_known_answer() -> None:
    user, password, salt = "alice", "s3cret", b"\x01\x02\x03\x04"
    inner = hashlib.md5(b"s3cretalice").hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()

    assert md5_password_response(user, password, salt) == expected.encode()
    assert not md5_password_response(user, password, salt).endswith(b"\x00")


def test_md5_password_response_rejects_bad_salt() -> None:
    with pytest.raises(AuthenticationError, match="4 bytes"):
        md5_password_response("alice", "pw", b"\x01\x02\x03")


def test_cleartext_password_response() -> None:
    assert cleartext_password_response("pässword") == "pässword".encode()
    with pytest.raises(AuthenticationError, match="nul"):
        cleartext_password_response("a\x00b")


# -- SASLprep -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("pencil", b"pencil"),
        ("ascii\x07bell", b"ascii\x07bell"),  # ASCII is never touched
        ("I\u00adX", b"IX"),  # RFC 4013 section 3, example 1
        ("\u2168", b"IX"),  # example 4: NFKC of ROMAN NUMERAL NINE
        ("a\u00a0b\u00e9", "a b\u00e9".encode()),
        ("\u00e9\x07", "\u00e9\x07".encode()),  # prohibited: raw bytes
        ("\u05d0\u05d1", "\u05d0\u05d1".encode()),  # right-to-left only: fine
    ],
)
def test_saslprep_password(password: str, prepared: bytes) -> None:
    assert saslprep_password(password) == prepared


def test_saslprep_password_rejects_lone_surrogate() -> None:
    with pytest.raises(AuthenticationError):
        saslprep_password("a\ud800")


# -- verifier strings ---------------------------------------------------------------


def test_scram_verifier_round_trip() -> None:
    verifier = make_scram_verifier("pw")
    assert ScramVerifier.from_string(verifier.to_string()) == verifier
    assert verifier.iterations == SCRAM_ITERATIONS
    assert len(verifier.salt) == 16


def test_scram_verifier_repr_hides_keys() -> None:
    verifier = make_scram_verifier("pw")
    assert base64.b64encode(verifier.stored_key).decode() not in repr(verifier)
    assert "stored_key" not in repr(verifier)


GOOD = POSTGRES_VERIFIERS["s3cret pw"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "md5a3556571e93b0d20722ba62be61e8c2d",
        GOOD.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
        GOOD.replace("$4096:", "$:"),
        GOOD.replace("$4096:", "$0:"),
        GOOD.replace("$4096:", "$-1:"),
        GOOD.replace("$4096:", "$\u0664\u0660\u0669\u0666:"),  # Arabic-Indic digits
        GOOD.replace("$4096:", "$99999999999:"),
        GOOD.replace("tVp+92/OzvtwloTMIC20EQ==", ""),
        GOOD.replace("tVp+92/OzvtwloTMIC20EQ==", "tVp+92/Ozvt!loTMIC20EQ=="),
        GOOD[:-4],
        GOOD + "AAAA",
        GOOD.rsplit(":", 1)[0],
        GOOD.replace("$", "#"),
    ],
)
def test_scram_verifier_from_string_rejects(text: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        ScramVerifier.from_string(text)
    assert "wwR8S2DT" not in str(caught.value)


@given(st.text(max_size=200))
def test_scram_verifier_from_string_only_raises_authentication_error(
    text: str,
) -> None:
    with contextlib.suppress(AuthenticationError):
        ScramVerifier.from_string(text)


def test_make_scram_verifier_rejects_zero_iterations() -> None:
    with pytest.raises(ValueError, match="iteration"):
        make_scram_verifier("pw", iterations=0)


# -- round trips --------------------------------------------------------------------


def test_scram_round_trip_right_password() -> None:
    server = ScramServer(make_scram_verifier("correct horse"))
    client = ScramClient("alice", "correct horse")

    exchange(server, client)

    assert server.authenticated
    assert client.authenticated


def test_scram_round_trip_non_ascii_password() -> None:
    server = ScramServer(make_scram_verifier("pa\u00adss\ufb01"))
    client = ScramClient("alice", "pass\ufb01")  # SASLprep drops the soft hyphen

    exchange(server, client)

    assert server.authenticated


def test_scram_round_trip_wrong_password() -> None:
    server = ScramServer(make_scram_verifier("correct horse"))
    client = ScramClient("alice", "battery staple")
    server_first = server.client_first(client.client_first())
    client_final = client.server_first(server_first)

    with pytest.raises(AuthenticationError, match=AUTH_FAILED):
        server.client_final(client_final)
    assert server.phase is ScramServerPhase.FAILED
    assert not server.authenticated


def test_scram_round_trip_unknown_person_fails_like_a_wrong_password() -> None:
    server = ScramServer(None, user="mallory")
    client = ScramClient("mallory", "anything")
    server_first = server.client_first(client.client_first())
    client_final = client.server_first(server_first)

    with pytest.raises(AuthenticationError, match=AUTH_FAILED):
        server.client_final(client_final)


def test_scram_unknown_person_fails_even_with_a_valid_proof(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Make the fake verifier one whose password we know: still refused.
    known = make_scram_verifier("guessable")
    monkeypatch.setattr(auth, "mock_scram_verifier", lambda user, secret: known)
    server = ScramServer(None, user="mallory")
    client = ScramClient("mallory", "guessable")
    client_final = client.server_first(server.client_first(client.client_first()))

    with pytest.raises(AuthenticationError, match=AUTH_FAILED):
        server.client_final(client_final)


def test_scram_unknown_person_server_first_looks_real() -> None:
    first = b"n,,n=,r=cli"
    one = ScramServer(None, nonce=b"srv", user="mallory").client_first(first)
    again = ScramServer(None, nonce=b"srv", user="mallory").client_first(first)
    other = ScramServer(None, nonce=b"srv", user="trudy").client_first(first)
    real = ScramServer(make_scram_verifier("pw"), nonce=b"srv").client_first(first)

    assert one == again  # a name keeps its fake salt, as a real salt would
    assert one != other
    for message in (one, real):
        nonce, salt, iterations = message.split(b",")
        assert nonce == b"r=clisrv"
        assert len(base64.b64decode(salt[2:])) == 16
        assert iterations == b"i=4096"


def test_scram_server_flag_y_needs_matching_binding() -> None:
    verifier = make_scram_verifier("pw")
    server = ScramServer(verifier, nonce=b"srv")
    client = ScramClient("alice", "pw", nonce=b"cli")
    client.client_first()

    server_first = server.client_first(b"y,,n=,r=cli")
    # The client signs "c=biws" (n,,); with y the proof must cover "c=eSws" (y,,).
    assert server_first.startswith(b"r=clisrv,")
    client_final = client.server_first(server_first)
    with pytest.raises(AuthenticationError, match="channel binding"):
        server.client_final(client_final)


def test_scram_server_flag_y_round_trip() -> None:
    salt = b"0123456789abcdef"
    server = ScramServer(make_scram_verifier("pw", salt=salt), nonce=b"srv")
    server_first = server.client_first(b"y,,n=,r=cli")
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 4096)
    client_final = _client_final(salted, b"n=,r=cli", server_first, b"c=eSws,r=clisrv")

    assert server.client_final(client_final).startswith(b"v=")


def _client_final(
    salted: bytes, bare: bytes, server_first: bytes, without_proof: bytes
) -> bytes:
    # RFC 5802 section 3, written out independently of pamwire's client.
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = b",".join((bare, server_first, without_proof))
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return without_proof + b",p=" + base64.b64encode(proof)


def test_scram_server_ignores_extensions_and_client_user_name() -> None:
    salt = b"0123456789abcdef"
    server = ScramServer(make_scram_verifier("pw", salt=salt), nonce=b"srv")
    bare = b"n=someone=2Celse,r=cli,x=ext"
    server_first = server.client_first(b"n,," + bare)
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 4096)
    client_final = _client_final(salted, bare, server_first, b"c=biws,r=clisrv,z=1")

    assert server.client_final(client_final).startswith(b"v=")


def test_scram_server_nonce_mismatch() -> None:
    salt = b"0123456789abcdef"
    server = ScramServer(make_scram_verifier("pw", salt=salt), nonce=b"srv")
    server_first = server.client_first(b"n,,n=,r=cli")
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 4096)
    client_final = _client_final(salted, b"n=,r=cli", server_first, b"c=biws,r=clisrvX")

    with pytest.raises(AuthenticationError, match=AUTH_FAILED):
        server.client_final(client_final)


def test_scram_client_rejects_replayed_server_final() -> None:
    _, _, _, old_server_final = exchange(
        ScramServer(make_scram_verifier("pw")), ScramClient("alice", "pw")
    )
    server = ScramServer(make_scram_verifier("pw"))
    client = ScramClient("alice", "pw")
    server.client_final(client.server_first(server.client_first(client.client_first())))

    with pytest.raises(AuthenticationError, match="signature"):
        client.server_final(old_server_final)


def test_scram_nonces_are_fresh() -> None:
    first = ScramClient("a", "pw").client_first()
    second = ScramClient("a", "pw").client_first()
    assert first != second


# -- malformed input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"p=tls-server-end-point,,n=,r=abc", "channel binding is not supported"),
        (b"n,a=admin,n=,r=abc", "authorization identity"),
        (b"n,,m=ext,n=,r=abc", "mandatory scram extension"),
        (b"x,,n=,r=abc", "gs2 header"),
        (b"", "gs2 header"),
        (b"n,,n=", "missing nonce"),
        (b"n,,n=,r=", "malformed nonce"),
        (b"n,,n=,r=a\x7fb", "malformed nonce"),
        (b"n,,r=abc,n=", "expected attribute 'n'"),
        (b"n,,n=,r=abc,", "malformed attribute"),
        (b"n,,n=,r=abc,1=x", "malformed attribute"),
        (b"n,,n=\xff,r=abc", "utf-8"),
        (b"n,,n=\x00,r=abc", "nul"),
    ],
)
def test_scram_server_client_first_rejects(message: bytes, error: str) -> None:
    server = ScramServer(make_scram_verifier("pw", salt=b"salt"))

    with pytest.raises(AuthenticationError, match=error):
        server.client_first(message)
    assert server.phase is ScramServerPhase.FAILED


PROOF = base64.b64encode(bytes(32))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", "malformed client-final-message"),
        (b"c=biws,r=abc", "malformed client-final-message"),
        (b"c=biws,r=abc,x=" + PROOF, "expected attribute 'p'"),
        (b"r=abc,c=biws,p=" + PROOF, "expected attribute 'c'"),
        (b"c=biws,p=" + PROOF + b",r=abc", "expected attribute 'r'"),
        (b"c=eSws,r=abc,p=" + PROOF, "channel binding data does not match"),
        (b"c=!!,r=abc,p=" + PROOF, "malformed base64"),
        (b"c=biws,r=abc,p=AAAA", "malformed proof"),
        (b"c=biws,r=abc,p=not base64", "malformed base64"),
        (b"c=biws,r=abc,,p=" + PROOF, "malformed attribute"),
    ],
)
def test_scram_server_client_final_rejects(message: bytes, error: str) -> None:
    server = ScramServer(make_scram_verifier("pw", salt=b"salt"), nonce=b"x")
    server.client_first(b"n,,n=,r=ab")  # full nonce "abx", so "abc" is wrong too

    with pytest.raises(AuthenticationError, match=error):
        server.client_final(message)
    assert server.phase is ScramServerPhase.FAILED


def test_scram_server_out_of_order() -> None:
    server = ScramServer(make_scram_verifier("pw", salt=b"salt"))
    with pytest.raises(AuthenticationError, match="unexpected client-final-message"):
        server.client_final(b"c=biws,r=abc,p=" + PROOF)
    with pytest.raises(AuthenticationError, match="phase failed"):
        server.client_first(b"n,,n=,r=abc")


def test_scram_server_cannot_be_replayed_after_success() -> None:
    server = ScramServer(make_scram_verifier("pw"))
    client = ScramClient("alice", "pw")
    _, _, client_final, _ = exchange(server, client)

    with pytest.raises(AuthenticationError, match="unexpected"):
        server.client_final(client_final)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"m=x,r=abcdef,s=c2FsdA==,i=4096", "mandatory scram extension"),
        (b"r=abcdef,s=c2FsdA==", "malformed server-first-message"),
        (b"r=zzzdef,s=c2FsdA==,i=4096", "does not extend ours"),
        (b"r=abc,s=c2FsdA==,i=4096", "server nonce is empty"),
        (b"r=abcdef,s=,i=4096", "empty salt"),
        (b"r=abcdef,s=!,i=4096", "malformed base64"),
        (b"r=abcdef,s=c2FsdA==,i=0", "iteration count 0"),
        (b"r=abcdef,s=c2FsdA==,i=-1", "malformed iteration count"),
        (b"r=abcdef,s=c2FsdA==,i=4096x", "malformed iteration count"),
        (
            b"r=abcdef,s=c2FsdA==,i=%d" % (MAX_UPSTREAM_ITERATIONS + 1),
            "outside",
        ),
        (b"i=4096,s=c2FsdA==,r=abcdef", "expected attribute 'r'"),
    ],
)
def test_scram_client_server_first_rejects(message: bytes, error: str) -> None:
    client = ScramClient("alice", "pw", nonce=b"abc")
    client.client_first()

    with pytest.raises(AuthenticationError, match=error):
        client.server_first(message)


def test_scram_client_rejects_bad_nonce_argument() -> None:
    with pytest.raises(AuthenticationError, match="printable"):
        ScramClient("alice", "pw", nonce=b"a,b")


def test_scram_client_escapes_user_name() -> None:
    client = ScramClient("a=b,c", "pw", nonce=b"n")
    assert client.client_first() == b"n,,n=a=3Db=2Cc,r=n"


def test_choose_sasl_mechanism() -> None:
    offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    assert choose_sasl_mechanism(offered) == "SCRAM-SHA-256"
    with pytest.raises(AuthenticationError, match="SCRAM-SHA-256-PLUS"):
        choose_sasl_mechanism(["SCRAM-SHA-256-PLUS"])


# -- fuzzing: random bytes raise AuthenticationError and nothing else ----------------

FUZZ_VERIFIER = make_scram_verifier("pw", salt=b"salt")


@given(st.binary(max_size=300))
def test_scram_server_client_first_fuzz(data: bytes) -> None:
    server = ScramServer(FUZZ_VERIFIER)
    try:
        reply = server.client_first(data)
    except AuthenticationError:
        assert server.phase is ScramServerPhase.FAILED
    else:
        assert reply.startswith(b"r=")


@given(st.binary(max_size=300))
def test_scram_server_client_final_fuzz(data: bytes) -> None:
    server = ScramServer(FUZZ_VERIFIER)
    server.client_first(b"n,,n=,r=abc")
    with pytest.raises(AuthenticationError):
        server.client_final(data)


@given(
    st.lists(
        st.sampled_from(
            [b"c=", b"biws", b"r=", b"abc", b"p=", PROOF, b",", b"=", b"x", b"\xff"]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_scram_server_client_final_structured_fuzz(data: bytes) -> None:
    server = ScramServer(FUZZ_VERIFIER)
    server.client_first(b"n,,n=,r=abc")
    with pytest.raises(AuthenticationError):
        server.client_final(data)


@given(
    st.lists(
        st.sampled_from(
            [b"n", b"y", b"p=", b",", b"n=", b"r=", b"abc", b"m=", b"a=", b"=", b"\x00"]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_scram_server_client_first_structured_fuzz(data: bytes) -> None:
    server = ScramServer(FUZZ_VERIFIER)
    with contextlib.suppress(AuthenticationError):
        server.client_first(data)


@given(st.binary(max_size=300))
def test_scram_client_server_first_fuzz(data: bytes) -> None:
    client = ScramClient("alice", "pw", nonce=b"abc")
    client.client_first()
    with contextlib.suppress(AuthenticationError):
        client.server_first(data)


@given(st.binary(max_size=300))
def test_scram_client_server_final_fuzz(data: bytes) -> None:
    client = ScramClient("user", "pencil", nonce=RFC_CLIENT_NONCE)
    client.client_first()
    client.server_first(RFC_SERVER_FIRST)
    with pytest.raises(AuthenticationError):
        client.server_final(data)
