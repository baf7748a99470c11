"""Recorded conversations of real clients with MariaDB: every packet decodes and
re-encodes byte for byte, with the sequence ids the reply tracker expects.

The files come from protocols/mysql/captures/record.py (PyMySQL's text
protocol with multi-statements, a CALL, LOAD DATA LOCAL INFILE and 300 rows;
mysql-connector-python's prepared statements; the mariadb command-line client).
"""

from __future__ import annotations

import json
import pathlib

import pytest

from pamwire.mysql import messages as m
from tests.mysql.conversation import Conversation

CAPTURES = (
    pathlib.Path(__file__).resolve().parents[2] / "protocols" / "mysql" / "captures"
)
FILES = sorted(CAPTURES.glob("*.json"))


def test_captures_exist() -> None:
    assert {f.stem for f in FILES} >= {
        "pymysql-text",
        "mysql-connector-prepared",
        "mariadb-cli",
    }


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_capture_every_packet_round_trips(path: pathlib.Path) -> None:
    packets = json.loads(path.read_text("utf-8"))["packets"]
    conversation = Conversation()
    commands = 0
    for packet in packets:
        data = bytes.fromhex(packet["hex"])
        tracker = conversation.tracker
        active = tracker is not None and not tracker.done
        if active and tracker is not None:
            assert packet["seq"] == tracker.next_sequence_id, packet
        if packet["from"] == "client":
            conversation.client(data)
            if not active and conversation.logged_in:
                commands += 1
                assert packet["seq"] == 0
        else:
            conversation.server(data)
    assert conversation.logged_in
    assert commands > 3
    assert conversation.tracker is not None and conversation.tracker.done
    assert isinstance(conversation.decoded[-1], m.ComQuit)
