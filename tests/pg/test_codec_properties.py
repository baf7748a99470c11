"""Property tests of the PostgreSQL codec: a strategy per message, round trips,
arbitrary splits of a stream, and arbitrary bytes that must fail cleanly."""

from __future__ import annotations

import contextlib
import struct
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.errors import ProtocolError
from pamwire.pg import messages as m
from pamwire.pg.codec import (
    FrameReader,
    decode_backend,
    decode_frontend,
    decode_startup,
    encode,
    payload,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = tomllib.loads(
    (ROOT / "protocols" / "postgres" / "messages.toml").read_text("utf-8")
)["message"]
BY_NAME = {entry["name"]: entry for entry in CATALOGUE}

# Strings as the decoder produces them: arbitrary bytes without nul, decoded
# with surrogateescape, plus plain text with any non-surrogate character.
_raw_text = st.binary(max_size=24).map(
    lambda raw: raw.replace(b"\0", b"").decode("utf-8", "surrogateescape")
)
_plain_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=24
)
text = _raw_text | _plain_text
name_text = text.filter(bool)

int8 = st.integers(-(2**7), 2**7 - 1)
int16 = st.integers(-(2**15), 2**15 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
uint32 = st.integers(0, 2**32 - 1)
data = st.binary(max_size=40)
value = st.none() | data
cancel_key = st.binary(min_size=4, max_size=256)
kind = st.sampled_from([b"S", b"P"])


def tuples(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements, max_size=5).map(tuple)


report_fields = tuples(
    st.tuples(st.characters(min_codepoint=1, max_codepoint=255), text)
)
field_description = st.builds(
    m.FieldDescription, name_text | text, uint32, int16, uint32, int16, int32, int16
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "StartupMessage": st.builds(
        m.StartupMessage,
        st.integers(m.PROTOCOL_3_0, m.PROTOCOL_3_0 | 0xFFFF),
        tuples(st.tuples(name_text, text)),
    ),
    "SSLRequest": st.just(m.SSLRequest()),
    "GSSENCRequest": st.just(m.GSSENCRequest()),
    "CancelRequest": st.builds(m.CancelRequest, int32, cancel_key),
    "Query": st.builds(m.Query, text),
    "Parse": st.builds(m.Parse, text, text, tuples(uint32)),
    "Bind": st.builds(m.Bind, text, text, tuples(int16), tuples(value), tuples(int16)),
    "Describe": st.builds(m.Describe, kind, text),
    "Execute": st.builds(m.Execute, text, int32),
    "Close": st.builds(m.Close, kind, text),
    "Sync": st.just(m.Sync()),
    "Flush": st.just(m.Flush()),
    "Terminate": st.just(m.Terminate()),
    "CopyFail": st.builds(m.CopyFail, text),
    "FunctionCall": st.builds(
        m.FunctionCall, uint32, tuples(int16), tuples(value), int16
    ),
    "PasswordMessage": st.builds(m.PasswordMessage, data),
    "SASLInitialResponse": st.builds(m.SASLInitialResponse, text, value),
    "SASLResponse": st.builds(m.SASLResponse, data),
    "GSSResponse": st.builds(m.GSSResponse, data),
    "CopyData": st.builds(m.CopyData, data),
    "CopyDone": st.just(m.CopyDone()),
    "AuthenticationOk": st.just(m.AuthenticationOk()),
    "AuthenticationKerberosV5": st.just(m.AuthenticationKerberosV5()),
    "AuthenticationCleartextPassword": st.just(m.AuthenticationCleartextPassword()),
    "AuthenticationMD5Password": st.builds(
        m.AuthenticationMD5Password, st.binary(min_size=4, max_size=4)
    ),
    "AuthenticationGSS": st.just(m.AuthenticationGSS()),
    "AuthenticationGSSContinue": st.builds(m.AuthenticationGSSContinue, data),
    "AuthenticationSSPI": st.just(m.AuthenticationSSPI()),
    "AuthenticationSASL": st.builds(m.AuthenticationSASL, tuples(name_text)),
    "AuthenticationSASLContinue": st.builds(m.AuthenticationSASLContinue, data),
    "AuthenticationSASLFinal": st.builds(m.AuthenticationSASLFinal, data),
    "BackendKeyData": st.builds(m.BackendKeyData, int32, cancel_key),
    "BindComplete": st.just(m.BindComplete()),
    "CloseComplete": st.just(m.CloseComplete()),
    "CommandComplete": st.builds(m.CommandComplete, text),
    "CopyInResponse": st.builds(m.CopyInResponse, int8, tuples(int16)),
    "CopyOutResponse": st.builds(m.CopyOutResponse, int8, tuples(int16)),
    "CopyBothResponse": st.builds(m.CopyBothResponse, int8, tuples(int16)),
    "DataRow": st.builds(m.DataRow, tuples(value)),
    "EmptyQueryResponse": st.just(m.EmptyQueryResponse()),
    "ErrorResponse": st.builds(m.ErrorResponse, report_fields),
    "NoticeResponse": st.builds(m.NoticeResponse, report_fields),
    "FunctionCallResponse": st.builds(m.FunctionCallResponse, value),
    "NegotiateProtocolVersion": st.builds(
        m.NegotiateProtocolVersion, int32, tuples(text)
    ),
    "NoData": st.just(m.NoData()),
    "NotificationResponse": st.builds(m.NotificationResponse, int32, text, text),
    "ParameterDescription": st.builds(m.ParameterDescription, tuples(uint32)),
    "ParameterStatus": st.builds(m.ParameterStatus, text, text),
    "ParseComplete": st.just(m.ParseComplete()),
    "PortalSuspended": st.just(m.PortalSuspended()),
    "ReadyForQuery": st.builds(m.ReadyForQuery, st.sampled_from([b"I", b"T", b"E"])),
    "RowDescription": st.builds(m.RowDescription, tuples(field_description)),
}

STARTUP = {"StartupMessage", "SSLRequest", "GSSENCRequest", "CancelRequest"}
# 'p' messages other than PasswordMessage decode as PasswordMessage (raw payload).
AMBIGUOUS_P = {"SASLInitialResponse", "SASLResponse", "GSSResponse"}


def decode_wire(raw: bytes, name: str, direction: str) -> Any:
    """Decode one whole encoded message the way the proxy would."""
    if name in STARTUP:
        return decode_startup(raw[4:])
    reader = FrameReader()
    reader.feed(raw)
    block, frames = reader.read_frames()
    assert block == raw
    assert len(frames) == 1
    body = payload(block, frames[0])
    if direction == "frontend":
        return decode_frontend(frames[0].type, body)
    return decode_backend(frames[0].type, body)


def directions(name: str) -> list[str]:
    direction = BY_NAME[name]["direction"]
    return ["frontend", "backend"] if direction == "both" else [direction]


any_frontend = st.one_of(
    [
        STRATEGIES[entry["name"]]
        for entry in CATALOGUE
        if entry["direction"] in ("frontend", "both")
        and entry["name"] not in STARTUP | AMBIGUOUS_P
    ]
)
any_backend = st.one_of(
    [
        STRATEGIES[entry["name"]]
        for entry in CATALOGUE
        if entry["direction"] in ("backend", "both")
    ]
)


# The catalogue ---------------------------------------------------------------------


def test_catalogue_every_entry_has_class_and_strategy() -> None:
    for entry in CATALOGUE:
        cls = getattr(m, entry["name"])
        assert entry["name"] in STRATEGIES
        assert cls.type_code == entry["type"].encode("ascii"), entry["name"]
        assert [f.name for f in attrs.fields(cls)] == [
            f["name"] for f in entry["fields"]
        ], entry["name"]
    assert set(STRATEGIES) == set(BY_NAME)


def test_catalogue_directions_match_type_aliases() -> None:
    frontend = set(m.FrontendMessage.__args__)
    backend = set(m.BackendMessage.__args__)
    for entry in CATALOGUE:
        cls = getattr(m, entry["name"])
        assert (cls in frontend) == (entry["direction"] in ("frontend", "both"))
        assert (cls in backend) == (entry["direction"] in ("backend", "both"))


@pytest.mark.parametrize(
    "name", [e["name"] for e in CATALOGUE if "code" in e and e["type"] == "R"]
)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_catalogue_authentication_codes_match_encoding(
    name: str, data: st.DataObject
) -> None:
    raw = encode(data.draw(STRATEGIES[name]))
    assert struct.unpack_from(">i", raw, 5)[0] == BY_NAME[name]["code"]


@pytest.mark.parametrize("name", sorted(STARTUP))
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_catalogue_startup_codes_match_encoding(name: str, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[name])
    code = struct.unpack_from(">i", encode(message), 4)[0]
    if name == "StartupMessage":
        code = m.PROTOCOL_3_0 if code >> 16 == 3 else code
    assert code == BY_NAME[name]["code"]


def test_catalogue_every_entry_is_in_the_coverage_doc() -> None:
    doc = (ROOT / "docs" / "protocol-postgres.md").read_text("utf-8")
    for entry in CATALOGUE:
        assert f"| {entry['name']} |" in doc, entry["name"]


# Round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_codec_round_trip(name: str, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[name])
    raw = encode(message)
    for direction in directions(name):
        decoded = decode_wire(raw, name, direction)
        assert encode(decoded) == raw
        if name in AMBIGUOUS_P:
            assert decoded == m.PasswordMessage(raw[5:])
        else:
            assert decoded == message


@settings(max_examples=100, deadline=None)
@given(STRATEGIES["SASLInitialResponse"])
def test_parse_sasl_initial_response_round_trip(
    message: m.SASLInitialResponse,
) -> None:
    assert m.parse_sasl_initial_response(encode(message)[5:]) == message


@settings(max_examples=100, deadline=None)
@given(text)
def test_parse_password_round_trip(password: str) -> None:
    raw = encode(m.PasswordMessage.from_password(password))
    assert m.parse_password(raw[5:]) == password


# Streams ---------------------------------------------------------------------------


def read_all(reader: FrameReader, pieces: list[bytes]) -> tuple[bytes, list[Any]]:
    blocks, decoded = [], []
    for piece in pieces:
        reader.feed(piece)
        block, frames = reader.read_frames()
        blocks.append(block)
        decoded += [decode_frontend(f.type, payload(block, f)) for f in frames]
    return b"".join(blocks), decoded


@settings(max_examples=100, deadline=None)
@given(st.lists(any_frontend, min_size=1, max_size=8), st.data())
def test_frame_reader_any_split_gives_same_messages(
    messages: list[Any], data: st.DataObject
) -> None:
    stream = b"".join(map(encode, messages))
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(stream)), max_size=10, unique=True))
    )
    pieces = [
        stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]

    reader = FrameReader()
    raw, decoded = read_all(reader, pieces)
    assert raw == stream
    assert decoded == messages
    assert reader.buffered == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(any_backend, min_size=1, max_size=6))
def test_frame_reader_backend_stream_one_byte_at_a_time(messages: list[Any]) -> None:
    stream = b"".join(map(encode, messages))
    reader = FrameReader()
    blocks, decoded = [], []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        block, frames = reader.read_frames()
        blocks.append(block)
        decoded += [decode_backend(f.type, payload(block, f)) for f in frames]
    assert b"".join(blocks) == stream
    assert decoded == messages


# Arbitrary bytes fail only with ProtocolError --------------------------------------

_FRONTEND_TYPES = b"QPBDECSHXdcfFpz\0"
_BACKEND_TYPES = b"RK23CGHWdcDIEVNvnAtS1sZTz\0"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_FRONTEND_TYPES), st.binary(max_size=60))
def test_decode_frontend_arbitrary_bytes_fail_cleanly(type_: int, raw: bytes) -> None:
    try:
        message = decode_frontend(type_, raw)
    except ProtocolError:
        return
    assert encode(message) == bytes([type_]) + struct.pack(">i", len(raw) + 4) + raw


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_BACKEND_TYPES), st.binary(max_size=60))
def test_decode_backend_arbitrary_bytes_fail_cleanly(type_: int, raw: bytes) -> None:
    try:
        message = decode_backend(type_, raw)
    except ProtocolError:
        return
    assert encode(message) == bytes([type_]) + struct.pack(">i", len(raw) + 4) + raw


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(
        [m.PROTOCOL_3_0, m.PROTOCOL_3_2, m.CANCEL_REQUEST_CODE, m.SSL_REQUEST_CODE]
    )
    | int32,
    st.binary(max_size=60),
)
def test_decode_startup_arbitrary_bytes_fail_cleanly(code: int, body: bytes) -> None:
    raw = struct.pack(">i", code) + body
    try:
        message = decode_startup(raw)
    except ProtocolError:
        return
    assert encode(message) == struct.pack(">i", len(raw) + 4) + raw


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_payload_parsers_arbitrary_bytes_fail_cleanly(raw: bytes) -> None:
    for parse in (m.parse_password, m.parse_sasl_initial_response):
        with contextlib.suppress(ProtocolError):
            parse(raw)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(st.binary(max_size=30), max_size=6))
def test_frame_reader_arbitrary_bytes_fail_cleanly(
    startup: bool, pieces: list[bytes]
) -> None:
    reader = FrameReader(startup=startup, max_message_size=1 << 20)
    consumed = b""
    try:
        for piece in pieces:
            reader.feed(piece)
            block, frames = reader.read_frames()
            consumed += block
            if frames:
                assert frames[-1].end == len(block)
    except ProtocolError:
        return
    assert len(consumed) + reader.buffered == sum(map(len, pieces))
    assert consumed == b"".join(pieces)[: len(consumed)]


# Messages without a trailing free-length field: every truncation must fail.
_OPEN_ENDED = {
    "CancelRequest",
    "PasswordMessage",
    "SASLResponse",
    "GSSResponse",
    "CopyData",
    "AuthenticationGSSContinue",
    "AuthenticationSASLContinue",
    "AuthenticationSASLFinal",
    "BackendKeyData",
}


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - _OPEN_ENDED - AMBIGUOUS_P))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_codec_truncated_payload_raises(name: str, data: st.DataObject) -> None:
    raw = encode(data.draw(STRATEGIES[name]))
    header = 4 if name in STARTUP else 5
    for direction in directions(name):
        for cut in range(header, len(raw)):
            body = raw[header:cut]
            with pytest.raises(ProtocolError):
                if name in STARTUP:
                    decode_startup(body)
                elif direction == "frontend":
                    decode_frontend(raw[0], body)
                else:
                    decode_backend(raw[0], body)


@settings(max_examples=400, deadline=None)
@given(any_frontend | any_backend, st.data())
def test_codec_mutated_message_fails_cleanly_or_round_trips(
    message: Any, data: st.DataObject
) -> None:
    # Overwrite, insert or delete a few payload bytes of a valid message: the
    # decoders must either reject the result or decode it to an exact copy.
    raw = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(5, len(raw)))
        byte = data.draw(st.binary(min_size=1, max_size=1))
        edit = data.draw(st.sampled_from(["overwrite", "insert", "delete"]))
        if edit == "insert" or at == len(raw):
            raw[at:at] = byte
        elif edit == "overwrite":
            raw[at : at + 1] = byte
        else:
            del raw[at]
    body = bytes(raw[5:])
    for decode in (decode_frontend, decode_backend):
        try:
            decoded = decode(raw[0], body)
        except ProtocolError:
            continue
        assert encode(decoded) == raw[:1] + struct.pack(">i", len(body) + 4) + body
