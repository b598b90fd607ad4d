"""``synccli events`` and ``synccli board`` through click's CliRunner on real SQLite files,
the actor of writes made through a real server, and the output streamed into a closed pipe."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from websockets.asyncio.client import connect

from synccli.audit.entries import LogEntry, LogLine
from synccli.audit.render import log_json
from synccli.cli.main import cli
from synccli.client.operator import update_state
from synccli.domain.channels import WriteRequest
from synccli.domain.values import Row
from synccli.errors import EXIT_FAILED, EXIT_USAGE
from synccli.protocol.client_id import client_id_of, with_client_id
from synccli.store import open_store
from synccli.store.base import Store
from synccli.tokens import mint_token
from tests.server.helpers import Client, aio, client, running_server
from tests.server.helpers import db_url as server_db_url
from tests.store.contract import DATE, NOW, appt

WRITES = [
    (1, "Present", "ann"),
    (2, "Cancelled", None),
    (1, "Seated", "bob"),
    (3, "NoShow", "ann"),
    (1, "Dismissed", None),
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clinic.db'}"


@pytest.fixture
def store(url: str) -> Store:
    opened = open_store(url)
    opened.init_schema()
    opened.seed(DATE, 3)
    for i, (number, state, actor) in enumerate(WRITES):
        request = WriteRequest(f"req-{i}", appt(number), state, actor=actor)
        opened.write(request, NOW + timedelta(minutes=i))
    return opened


def test_events_shows_every_change_with_its_actor(store: Store, url: str) -> None:
    result = invoke("events", DATE, "--db", url)
    assert result.exit_code == 0, result.output
    header, rule, *lines = result.stdout.splitlines()
    assert header.split()[:4] == ["seq", "committed", "at", "appointment"]
    assert set(rule) == {"-", " "}
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    first = lines[0].split()
    assert first[1:] == [
        "2026-11-26T10:15:30.123Z",
        appt(1),
        "Patient",
        "0001",
        "Scheduled",
        "→",
        "Present",
        "2",
        "ann",
        "req-0",
    ]
    assert lines[1].split()[-2:] == ["?", "req-1"]  # no actor known
    assert result.stderr == ""


def test_events_as_json_lines_and_csv(store: Store, url: str) -> None:
    result = invoke("events", DATE, "--db", url, "--format", "json", "--since", "2")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in records] == [3, 4, 5]
    assert records[0] == {
        "seq": 3,
        "committedAt": "2026-11-26T10:17:30.123Z",
        "appointmentId": appt(1),
        "patient": "Patient 0001",
        "from": "Present",
        "to": "Seated",
        "version": 3,
        "actor": "bob",
        "requestId": "req-2",
    }
    result = invoke("events", DATE, "--db", url, "--format", "csv", "--appointment", appt(1))
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][0] == "seq" and [r[0] for r in rows[1:]] == ["1", "3", "5"]
    assert rows[-1][4] == "Seated → Dismissed"


def test_events_limit_and_pages(store: Store, url: str) -> None:
    result = invoke("events", DATE, "--db", url, "--limit", "2", "--format", "json")
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [1, 2]


def test_events_names_what_retention_pruned(store: Store, url: str) -> None:
    store.prune(NOW + timedelta(minutes=2))
    result = invoke("events", DATE, "--db", url, "--format", "json")
    assert result.exit_code == 0
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [3, 4, 5]
    assert "events 1 to 2 of 2026-11-26 were pruned by retention" in result.stderr
    result = invoke("db", "status", "--db", url)
    line = result.stdout.splitlines()[2].split()
    assert line[4:8] == ["2026-11-26T10:17:30.123Z", "1-2", "3", "3"]


def test_an_unknown_date_is_an_empty_log_and_a_note(store: Store, url: str) -> None:
    for command in ("events", "board"):
        result = invoke(command, "2026-11-27", "--db", url)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert "2026-11-27" in result.stderr and "nothing" in result.stderr
    result = invoke("events", DATE, "--db", url, "--since", "5")
    assert result.exit_code == 0 and result.stdout == ""
    assert "no events on 2026-11-26 after sequence 5 (head 5)" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["events", "2026-13-01"], EXIT_USAGE, "'2026-13-01' is not a date"),
        (["events", "26.11.2026"], EXIT_USAGE, "is not a date"),
        (["board", "2026-02-30"], EXIT_USAGE, "is not a date"),
        (["board", DATE, "--at", "half past nine"], EXIT_USAGE, "is not a time"),
        (["board", DATE, "--at", "2026-11-26T25:00"], EXIT_USAGE, "is not a time"),
        (["board", DATE, "--at", "10:15"], EXIT_USAGE, "is before the first event"),
        (["board", DATE, "--at", "10:15", "--seq", "1"], EXIT_USAGE, "not both"),
        (["board", DATE, "--seq", "9"], EXIT_USAGE, "from sequence 0 to 5, not 9"),
        (["events", DATE, "--since", "-1"], EXIT_USAGE, "-1"),
        (["events", DATE, "--appointment", "nope"], EXIT_FAILED, "no appointment 'nope'"),
        (
            ["events", "2026-11-27", "--appointment", appt(1)],
            EXIT_FAILED,
            f"appointment '{appt(1)}' is on 2026-11-26, not on 2026-11-27",
        ),
    ],
)
def test_bad_input_is_one_sentence_and_an_exit_code(
    store: Store, url: str, args: list[str], code: int, words: str
) -> None:
    result = invoke(*args, "--db", url)
    assert result.exit_code == code, result.output
    assert words in result.output
    assert "Traceback" not in result.output and result.stdout == ""


def test_board_at_a_sequence_number_and_a_time(store: Store, url: str) -> None:
    result = invoke("board", DATE, "--db", url, "--seq", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["seq"], document["head"]) == (2, 5)
    assert [a["state"] for a in document["appointments"]] == ["Present", "Cancelled", "Scheduled"]
    assert "matchesStoredRows" not in document
    at = invoke("board", DATE, "--db", url, "--at", "2026-11-26T10:17:00Z", "--format", "json")
    assert json.loads(at.stdout) == document
    offset = invoke("board", DATE, "--db", url, "--at", "2026-11-26T11:17:00+01:00")
    assert offset.stdout.startswith("2026-11-26 at sequence 2 of 5, committed ")


def test_board_at_the_head_is_checked_against_the_stored_rows(store: Store, url: str) -> None:
    result = invoke("board", DATE, "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "2026-11-26 at sequence 5 of 5, committed 2026-11-26T10:19:30.123Z"
    )
    assert "Dismissed" in result.stdout and "matches the stored rows (3 appointments)" in (
        result.stderr
    )
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "UPDATE appointments SET state = 'Present' WHERE appointment_id = ?", (appt(3),)
        )
    result = invoke("board", DATE, "--db", url, "--format", "json")
    assert result.exit_code == EXIT_FAILED
    document = json.loads(result.stdout)
    assert document["matchesStoredRows"] is False
    assert f"{appt(3)} is stored at version 2 (Present)" in result.stderr


def test_every_command_has_help() -> None:
    for command in ("events", "board"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "--db" in result.output and "Exit codes" in result.output


def test_events_into_a_closed_pipe_ends_quietly(store: Store, url: str, tmp_path: Path) -> None:
    # More output than a pipe holds (64 KiB), so the writer meets the closed pipe.
    for i in range(1000):
        store.write(WriteRequest(f"more-{i}", appt(2), ["Scheduled", "Cancelled"][i % 2]), NOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "synccli", "events", DATE, "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip().startswith(b"seq")
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_the_client_id_query_is_kept_only_when_valid() -> None:
    url = with_client_id("ws://127.0.0.1:1/ws?token=t&client=old", "c7")
    assert url == "ws://127.0.0.1:1/ws?token=t&client=c7"
    assert client_id_of("/ws?client=c7") == "c7"
    assert client_id_of("/ws?client=" + "x" * 65) is None
    assert client_id_of("/ws?client=%0Aevil") is None
    assert client_id_of("/ws") is None


@aio
async def test_writes_through_the_server_record_the_connection_s_client(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        written = await update_state(server.url, appt(1), "Present", request_id="op-1")
        assert written.ok
        async with client(server) as anonymous:
            assert (await anonymous.write(2, request_id="anon-1"))["ok"]
        async with connect(with_client_id(server.url, "c7"), compression=None) as ws:
            assert (await Client(ws).write(3, request_id="c7-1"))["ok"]
    result = invoke("events", DATE, "--db", server_db_url(tmp_path), "--format", "json")
    actors = [(r["requestId"], r["actor"]) for r in map(json.loads, result.stdout.splitlines())]
    assert actors == [("op-1", "operator"), ("anon-1", None), ("c7-1", "c7")]


@aio
async def test_a_jwt_subject_is_the_actor_even_with_a_client_id(tmp_path: Path) -> None:
    secret = "k" * 40
    async with running_server(tmp_path, jwt_secret=secret) as server:
        signed = mint_token(secret, "dr-jones", ["*"], True, 600)
        headers = {"Authorization": f"Bearer {signed}"}
        url = with_client_id(server.url, "c9")
        async with connect(url, additional_headers=headers, compression=None) as ws:
            assert (await Client(ws).write(1, request_id="jwt-1"))["ok"]
    result = invoke("events", DATE, "--db", server_db_url(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2].split()[-2:] == ["dr-jones", "jwt-1"]


def test_a_json_line_is_what_the_json_encoder_writes() -> None:
    payload = Row('a"1', DATE, 'Zoë "Q" \\ \x01 日本', "Present", None, 2, "t").to_wire()
    for actor, before, request in ((None, None, None), ("ann\n", "Scheduled", "r\u2028")):
        entry = LogEntry(
            7, "e", 'a"1', request, json.dumps(payload), "2026-11-26T10:00:00.000Z", actor,
            before, None, None,
        )  # fmt: skip
        expected = {
            "seq": 7,
            "committedAt": "2026-11-26T10:00:00.000Z",
            "appointmentId": 'a"1',
            "patient": payload["patient"],
            "from": before,
            "to": "Present",
            "version": 2,
            "actor": actor,
            "requestId": request,
        }
        assert log_json(LogLine.of(entry)) == json.dumps(expected, ensure_ascii=False)
