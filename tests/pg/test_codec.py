"""Example-based tests of the PostgreSQL cursor, framing, decoders and encoder."""

from __future__ import annotations

import struct

import pytest

from pamwire.errors import (
    ClientProtocolError,
    MessageTooLarge,
    ProtocolError,
    ServerProtocolError,
)
from pamwire.pg import messages as m
from pamwire.pg.codec import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Frame,
    FrameReader,
    command_tag,
    data_row_values,
    decode_backend,
    decode_frontend,
    decode_startup,
    encode,
    payload,
    ready_status,
)
from pamwire.pg.cursor import Cursor

# TODO(fixtures): replay a captured psql and pgbench conversation byte for byte;
# the hand-made known answers below only cover a few messages.

# Known answers, worked out by hand from the manual's "Message Formats" section.
KNOWN_FRONTEND = [
    (m.Query("select 1"), b"Q\x00\x00\x00\x0dselect 1\x00"),
    (m.Sync(), b"S\x00\x00\x00\x04"),
    (m.Terminate(), b"X\x00\x00\x00\x04"),
    (m.Execute("", 0), b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"),
    (m.Describe(b"S", "s1"), b"D\x00\x00\x00\x08Ss1\x00"),
    (
        m.Parse("", "select $1", (23,)),
        b"P\x00\x00\x00\x15\x00select $1\x00\x00\x01\x00\x00\x00\x17",
    ),
    (
        m.Bind("", "", (), (b"42", None), ()),
        b"B\x00\x00\x00\x16\x00\x00\x00\x00\x00\x02"
        b"\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x00",
    ),
]
KNOWN_BACKEND = [
    (m.AuthenticationOk(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
    (
        m.AuthenticationSASL(("SCRAM-SHA-256",)),
        b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00",
    ),
    (
        m.AuthenticationMD5Password(b"\x01\x02\x03\x04"),
        b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04",
    ),
    (m.ReadyForQuery(b"I"), b"Z\x00\x00\x00\x05I"),
    (m.CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
    (
        m.DataRow((b"1", None)),
        b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff",
    ),
    (
        m.BackendKeyData(1234, b"\x00\x00\x00\x2a"),
        b"K\x00\x00\x00\x0c\x00\x00\x04\xd2\x00\x00\x00\x2a",
    ),
    (
        m.RowDescription((m.FieldDescription("a", 0, 0, 23, 4, -1, 0),)),
        b"T\x00\x00\x00\x1a\x00\x01a\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
    ),
    (
        m.ErrorResponse((("S", "ERROR"), ("C", "42501"), ("M", "no"))),
        b"E\x00\x00\x00\x17SERROR\x00C42501\x00Mno\x00\x00",
    ),
]
KNOWN_STARTUP = [
    (m.SSLRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
    (m.GSSENCRequest(), b"\x00\x00\x00\x08\x04\xd2\x16\x30"),
    (
        m.CancelRequest(7, b"abcd"),
        b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07abcd",
    ),
    (
        m.StartupMessage(m.PROTOCOL_3_0, (("user", "alice"), ("database", "db"))),
        b"\x00\x00\x00\x20\x00\x03\x00\x00user\x00alice\x00database\x00db\x00\x00",
    ),
]


# Cursor ----------------------------------------------------------------------------


def test_cursor_reads_typed_fields() -> None:
    cur = Cursor(b"\xff\xff\xfe\xff\xff\xff\xfdab\x00\x01\x02")
    assert cur.int8() == -1
    assert cur.int16() == -2
    assert cur.int32() == -3
    assert cur.cstring() == "ab"
    assert cur.byte() == 1
    assert not cur.at_end()
    assert cur.rest() == b"\x02"
    assert cur.at_end()
    cur.expect_end()


def test_cursor_reads_unsigned_fields() -> None:
    cur = Cursor(memoryview(b"\xff\xff\xff\xff\xff\xff"))
    assert cur.uint16() == 0xFFFF
    assert cur.uint32() == 0xFFFFFFFF


def test_cursor_short_read_raises_protocol_error() -> None:
    for read in ("int8", "byte", "int16", "uint16", "int32", "uint32"):
        with pytest.raises(ProtocolError):
            getattr(Cursor(b""), read)()
    with pytest.raises(ProtocolError):
        Cursor(b"abc").bytes(4)
    with pytest.raises(ProtocolError):
        Cursor(b"abc").bytes(-1)


def test_cursor_cstring_without_nul_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="nul"):
        Cursor(memoryview(b"abc")).cstring()


def test_cursor_cstring_keeps_invalid_utf8() -> None:
    text = Cursor(b"\xff\xfe\x00").cstring()
    assert text.encode("utf-8", "surrogateescape") == b"\xff\xfe"


def test_cursor_expect_end_rejects_trailing_bytes() -> None:
    cur = Cursor(b"\x00\x01x")
    cur.int16()
    with pytest.raises(ProtocolError, match="1 trailing"):
        cur.expect_end()


# Known answers ---------------------------------------------------------------------


@pytest.mark.parametrize(("message", "raw"), KNOWN_FRONTEND)
def test_codec_frontend_known_answers(message: m.FrontendMessage, raw: bytes) -> None:
    assert encode(message) == raw
    assert decode_frontend(raw[0], raw[5:]) == message


@pytest.mark.parametrize(("message", "raw"), KNOWN_BACKEND)
def test_codec_backend_known_answers(message: m.BackendMessage, raw: bytes) -> None:
    assert encode(message) == raw
    assert decode_backend(raw[0], raw[5:]) == message


@pytest.mark.parametrize(("message", "raw"), KNOWN_STARTUP)
def test_codec_startup_known_answers(message: m.FrontendMessage, raw: bytes) -> None:
    assert encode(message) == raw
    assert decode_startup(raw[4:]) == message


def test_error_response_properties() -> None:
    error = m.ErrorResponse(
        (("S", "FEHLER"), ("V", "ERROR"), ("C", "42P01"), ("M", "no table"))
    )
    assert (error.severity, error.code, error.message) == ("ERROR", "42P01", "no table")
    assert error.get("H") is None
    notice = m.NoticeResponse((("S", "NOTICE"),))
    assert (notice.severity, notice.code, notice.message) == ("NOTICE", "", "")
    same_fields: object = m.ErrorResponse((("S", "NOTICE"),))
    assert notice != same_fields


def test_startup_message_params_and_version() -> None:
    message = decode_startup(KNOWN_STARTUP[3][1][4:])
    assert isinstance(message, m.StartupMessage)
    assert message.params == {"user": "alice", "database": "db"}
    assert (message.major, message.minor) == (3, 0)


def test_password_parsers() -> None:
    assert m.parse_password(b"secret\x00") == "secret"
    sasl = m.parse_sasl_initial_response(b"SCRAM-SHA-256\x00\x00\x00\x00\x05n,,n=")
    assert sasl == m.SASLInitialResponse("SCRAM-SHA-256", b"n,,n=")
    without_data = m.parse_sasl_initial_response(b"X\x00\xff\xff\xff\xff")
    assert without_data.data is None
    with pytest.raises(ClientProtocolError):
        m.parse_password(b"secret")
    with pytest.raises(ClientProtocolError):
        m.parse_password(b"a\x00b")
    with pytest.raises(ClientProtocolError):
        m.parse_sasl_initial_response(b"X\x00\xff\xff\xff\xfe")


def test_decode_frontend_p_is_raw_password_message() -> None:
    raw = encode(m.SASLResponse(b"c=biws,r=abc"))
    assert raw[0] == ord("p")
    assert decode_frontend(raw[0], raw[5:]) == m.PasswordMessage(b"c=biws,r=abc")


# Decoding errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "body"),
    [
        (ord("z"), b""),  # unknown type byte
        (0, b""),
        (ord("S"), b"\x00"),  # trailing byte after Sync
        (ord("Q"), b"select 1"),  # no terminating nul
        (ord("Q"), b"a\x00b\x00"),  # trailing bytes after the string
        (ord("D"), b"X\x00"),  # bad Describe kind
        (ord("C"), b""),  # Close without a kind
        (ord("B"), b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00"),  # length -2
        (ord("B"), b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00"),  # short
        (ord("E"), b"\x00\x00\x00"),  # short max_rows
    ],
)
def test_decode_frontend_rejects_malformed(type_: int, body: bytes) -> None:
    with pytest.raises(ClientProtocolError):
        decode_frontend(type_, body)


@pytest.mark.parametrize(
    ("type_", "body"),
    [
        (ord("z"), b""),
        (ord("Z"), b"X"),  # bad transaction status
        (ord("Z"), b"II"),
        (ord("Z"), b""),
        (ord("R"), b"\x00\x00\x00\x06"),  # SCMCredential: not decoded
        (ord("R"), b"\x00\x00\x00\x00\x00"),  # trailing byte after AuthenticationOk
        (ord("R"), b"\x00\x00\x00\x05\x01\x02\x03"),  # short md5 salt
        (ord("R"), b"\x00\x00\x00\x0aSCRAM-SHA-256\x00"),  # list not terminated
        (ord("K"), b"\x00\x00\x00\x01abc"),  # key shorter than 4 bytes
        (ord("K"), b"\x00\x00\x00\x01" + b"k" * 257),  # key longer than 256 bytes
        (ord("D"), b"\x00\x01\xff\xff\xff\xfe"),  # negative value length
        (ord("D"), b"\x00\x02\x00\x00\x00\x00"),  # fewer values than counted
        (ord("E"), b"SERROR\x00"),  # no terminating zero byte
        (ord("v"), b"\x00\x00\x00\x00\xff\xff\xff\xff"),  # negative option count
        (ord("V"), b"\xff\xff\xff\xfd"),  # negative value length
        (ord("T"), b"\x00\x01a\x00\x00\x00"),  # short field description
        (ord("1"), b"\x00"),
    ],
)
def test_decode_backend_rejects_malformed(type_: int, body: bytes) -> None:
    with pytest.raises(ServerProtocolError):
        decode_backend(type_, body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x02\x00\x00user\x00x\x00\x00",  # protocol 2.0
        b"\x00\x04\x00\x00\x00",  # protocol 4.0
        b"\x04\xd2\x16\x31",  # unknown 1234.x request code
        b"\x04\xd2\x16\x2f\x00",  # SSLRequest with a trailing byte
        b"\x04\xd2\x16\x2e\x00\x00\x00\x07abc",  # 3-byte cancel key
        b"\x00\x03\x00\x00user\x00alice\x00",  # parameter list not terminated
        b"\x00\x03\x00\x00user\x00\x00",  # name without a value
        b"\x00\x03\x00\x00\x00x",  # trailing byte after the list
    ],
)
def test_decode_startup_rejects_malformed(body: bytes) -> None:
    with pytest.raises(ClientProtocolError):
        decode_startup(body)


def test_decode_startup_keeps_protocol_3_2() -> None:
    message = encode(m.StartupMessage(m.PROTOCOL_3_2, (("user", "a"),)))
    decoded = decode_startup(message[4:])
    assert isinstance(decoded, m.StartupMessage)
    assert decoded.protocol_version == m.PROTOCOL_3_2
    cancel = decode_startup(encode(m.CancelRequest(1, b"k" * 32))[4:])
    assert cancel == m.CancelRequest(1, b"k" * 32)


def test_decode_bind_counts_are_unsigned() -> None:
    # libpq and the server allow 65535 parameters: the Int16 count is unsigned.
    bind = m.Bind("", "s", (1,), (None,) * 65535, ())
    raw = encode(bind)
    assert raw[-4 - 65535 * 4 : -2 - 65535 * 4] == b"\xff\xff"
    assert decode_frontend(raw[0], raw[5:]) == bind


# Encoding errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        m.Query("select\x00 1"),
        m.Describe(b"X", ""),
        m.Close(b"", ""),
        m.Bind("", "", (), (None,) * 65536, ()),
        m.Bind("", "", (40000,), (), ()),
        m.Execute("", 2**31),
        m.ReadyForQuery(b"Q"),
        m.AuthenticationMD5Password(b"abc"),
        m.AuthenticationSASL(("",)),
        m.BackendKeyData(1, b"abc"),
        m.CancelRequest(1, b"k" * 257),
        m.StartupMessage(m.PROTOCOL_3_0, (("", "x"),)),
        m.ErrorResponse((("SV", "x"),)),
        m.ErrorResponse((("\u0100", "x"),)),
        m.CommandComplete("\ud800"),
    ],
)
def test_encode_rejects_unencodable(message: m.FrontendMessage) -> None:
    with pytest.raises(ProtocolError):
        encode(message)


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        encode(m.FieldDescription("a"))  # type: ignore[arg-type]


# FrameReader -----------------------------------------------------------------------

STREAM_MESSAGES: list[m.FrontendMessage] = [
    m.Parse("s1", "select $1::int", (23,)),
    m.Bind("p1", "s1", (0,), (b"7",), (1,)),
    m.Describe(b"P", "p1"),
    m.Execute("p1", 0),
    m.Sync(),
    m.Query("select 1; select 2"),
    m.CopyData(b"x" * 300),
    m.Terminate(),
]
STREAM = b"".join(map(encode, STREAM_MESSAGES))


def feed_pieces(pieces: list[bytes]) -> tuple[bytes, list[m.FrontendMessage]]:
    reader = FrameReader()
    blocks, decoded = [], []
    for piece in pieces:
        reader.feed(piece)
        block, frames = reader.read_frames()
        blocks.append(block)
        decoded += [decode_frontend(f.type, payload(block, f)) for f in frames]
    assert reader.buffered == 0
    return b"".join(blocks), decoded


def test_frame_reader_whole_stream_in_one_block() -> None:
    reader = FrameReader()
    reader.feed(STREAM)
    block, frames = reader.read_frames()
    assert block == STREAM
    assert [bytes([f.type]) for f in frames] == [
        msg.type_code for msg in STREAM_MESSAGES
    ]
    assert frames[0] == Frame(ord("P"), 5, len(encode(STREAM_MESSAGES[0])))
    assert reader.read_frames() == (b"", [])


def test_frame_reader_split_at_every_point() -> None:
    for cut in range(len(STREAM) + 1):
        raw, decoded = feed_pieces([STREAM[:cut], STREAM[cut:]])
        assert raw == STREAM, cut
        assert decoded == STREAM_MESSAGES, cut


def test_frame_reader_one_byte_at_a_time() -> None:
    raw, decoded = feed_pieces([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert raw == STREAM
    assert decoded == STREAM_MESSAGES


def test_frame_reader_accepts_bytearray_and_memoryview() -> None:
    half = len(STREAM) // 2
    _, decoded = feed_pieces(
        [bytearray(STREAM[:half]), memoryview(STREAM)[half:]]  # type: ignore[list-item]
    )
    assert decoded == STREAM_MESSAGES


def test_frame_reader_startup_mode_returns_one_frame_per_call() -> None:
    ssl, startup = KNOWN_STARTUP[0][1], KNOWN_STARTUP[3][1]
    query = encode(m.Query("select 1"))
    reader = FrameReader(startup=True)
    reader.feed(ssl + startup + query)

    block, frames = reader.read_frames()
    assert (block, frames) == (ssl, [Frame(0, 4, 8)])
    assert decode_startup(payload(block, frames[0])) == m.SSLRequest()

    block, frames = reader.read_frames()
    assert block == startup
    assert decode_startup(payload(block, frames[0])) == KNOWN_STARTUP[3][0]

    reader.startup = False
    block, frames = reader.read_frames()
    assert block == query
    assert decode_frontend(frames[0].type, payload(block, frames[0])) == m.Query(
        "select 1"
    )


def test_frame_reader_startup_packet_split_at_every_point() -> None:
    raw = KNOWN_STARTUP[3][1]
    for cut in range(len(raw) + 1):
        reader = FrameReader(startup=True)
        reader.feed(raw[:cut])
        first = reader.read_frames()
        reader.feed(raw[cut:])
        second = reader.read_frames()
        assert first[0] + second[0] == raw
        assert len(first[1]) + len(second[1]) == 1


def test_frame_reader_rejects_short_lengths() -> None:
    reader = FrameReader()
    reader.feed(b"Q\x00\x00\x00\x03")
    with pytest.raises(ProtocolError, match="length 3"):
        reader.read_frames()
    reader = FrameReader()
    reader.feed(b"Q\xff\xff\xff\xff")
    with pytest.raises(ProtocolError, match="length -1"):
        reader.read_frames()
    reader = FrameReader(startup=True)
    reader.feed(b"\x00\x00\x00\x07")
    with pytest.raises(ProtocolError, match="length 7"):
        reader.read_frames()


def test_frame_reader_message_too_large_before_body() -> None:
    reader = FrameReader(max_message_size=1000)
    reader.feed(encode(m.Sync()) + b"D\x00\x00\x03\xe9")  # 1001 announced, no body
    with pytest.raises(MessageTooLarge) as info:
        reader.read_frames()
    assert (info.value.length, info.value.limit) == (1001, 1000)

    reader = FrameReader()
    reader.feed(b"d" + struct.pack(">i", DEFAULT_MAX_MESSAGE_SIZE + 1))
    with pytest.raises(MessageTooLarge):
        reader.read_frames()


def test_frame_reader_startup_packet_too_large() -> None:
    reader = FrameReader(startup=True)
    reader.feed(struct.pack(">i", 10_001))
    with pytest.raises(MessageTooLarge):
        reader.read_frames()


def test_frame_reader_large_data_row_in_64k_chunks() -> None:
    size = 100 * 1024 * 1024
    value = bytes(range(256)) * (size // 256)
    row = encode(m.DataRow((value, None)))
    after = encode(m.CommandComplete("SELECT 1")) + encode(m.ReadyForQuery(b"I"))
    stream = row + after
    chunk_size = 64 * 1024
    chunks = [stream[i : i + chunk_size] for i in range(0, len(stream), chunk_size)]

    reader = FrameReader()
    results = []
    for i, chunk in enumerate(chunks):
        reader.feed(chunk)
        block, frames = reader.read_frames()
        if frames:
            results.append((block, frames))
        elif i > 1:
            # While the row is incomplete each chunk is kept as the very object
            # fed in: no copy of what came before, so the work per feed is
            # constant and the whole transfer linear.
            assert reader._chunks[-1] is chunk
            assert len(reader._buf) == 0
            assert reader.buffered == (i + 1) * chunk_size

    assert len(results) == 1
    block, frames = results[0]
    assert block == stream
    assert [f.type for f in frames] == [ord("D"), ord("C"), ord("Z")]
    decoded = decode_backend(frames[0].type, payload(block, frames[0]))
    assert decoded == m.DataRow((value, None))
    assert reader.buffered == 0


# -- hot-path readers: the same answers and errors as decode_backend --

_ROWS = [
    m.DataRow(()),
    m.DataRow((b"1",)),
    m.DataRow((None, b"", b"abc", None)),
    m.DataRow((b"\x00\xff" * 100, b"x")),
]


@pytest.mark.parametrize("row", _ROWS)
def test_data_row_values_matches_decode_backend(row: m.DataRow) -> None:
    raw = encode(row)
    view = memoryview(raw)[5:]
    assert data_row_values(view) == row.values
    assert data_row_values(bytes(view)) == row.values


@pytest.mark.parametrize("tag", ["SELECT 1", "INSERT 0 3", "", "BEGIN", "caf\u00e9"])
def test_command_tag_matches_decode_backend(tag: str) -> None:
    raw = encode(m.CommandComplete(tag))
    assert command_tag(memoryview(raw)[5:]) == tag


@pytest.mark.parametrize("status", [b"I", b"T", b"E"])
def test_ready_status_reads_each_status(status: bytes) -> None:
    raw = encode(m.ReadyForQuery(status))
    assert ready_status(memoryview(raw)[5:]) == status


@pytest.mark.parametrize(
    ("reader", "type_", "body"),
    [
        (ready_status, ord("Z"), b""),
        (ready_status, ord("Z"), b"X"),
        (ready_status, ord("Z"), b"II"),
        (command_tag, ord("C"), b""),
        (command_tag, ord("C"), b"SELECT 1"),  # no terminating nul
        (command_tag, ord("C"), b"SELECT\x001\x00"),  # trailing bytes
        (data_row_values, ord("D"), b""),
        (data_row_values, ord("D"), b"\x00"),
        (data_row_values, ord("D"), b"\x00\x01\xff\xff\xff\xfe"),  # length -2
        (data_row_values, ord("D"), b"\x00\x02\x00\x00\x00\x00"),  # one of two
        (data_row_values, ord("D"), b"\x00\x01\x00\x00\x00\x05abc"),  # short value
        (data_row_values, ord("D"), b"\x00\x01\xff\xff\xff\xffx"),  # trailing byte
        (data_row_values, ord("D"), b"\x00\x00\x00"),  # trailing byte, no values
    ],
)
def test_hot_path_readers_reject_what_decode_backend_rejects(
    reader: object, type_: int, body: bytes
) -> None:
    with pytest.raises(ServerProtocolError) as expected:
        decode_backend(type_, body)
    with pytest.raises(ServerProtocolError) as found:
        reader(memoryview(body))  # type: ignore[operator]
    assert str(found.value) == str(expected.value)
