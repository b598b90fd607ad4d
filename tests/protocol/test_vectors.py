"""The shared protocol vectors (tests/vectors/*.json) against the Python client core.

The same files drive the JS client (tests/js/vectors.test.mjs), so the two cannot drift.
A raw ``frame`` goes through ``parse_server_message`` as the simulated client's adapter
does: a malformed one goes to ``on_malformed`` (an ``error`` record and a resync), never
an exception.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from synccli.errors import ProtocolError
from synccli.protocol.channel import Effects
from synccli.protocol.messages import parse_server_message
from synccli.protocol.session import ClientSession, SessionConfig
from tests.conftest import require
from tests.vectors.generate import VECTORS

VECTOR_DIR = Path(__file__).parents[1] / "vectors"
FILES = sorted(VECTOR_DIR.glob("*.json"))


def run_step(session: ClientSession, step: dict[str, Any]) -> Effects:
    now = float(step["at"])
    if step.get("connect"):
        return session.on_connected(now)
    if step.get("disconnect"):
        session.on_disconnected()
        return Effects()
    if step.get("tick"):
        return session.tick(now)
    if step.get("flushAcks"):
        return Effects(send=list(session.flush_acks()))
    if "write" in step:
        w = step["write"]
        return session.begin_write(w["appointmentId"], w["state"], w["requestId"], now)
    frame = step["frame"] if "frame" in step else json.dumps(step["receive"])
    try:
        message = parse_server_message(frame)
    except ProtocolError as exc:
        # As the simulated client's adapter hands it over (client/simulated.py).
        return session.on_malformed(exc, frame)
    return session.on_message(message, now)


def check(session: ClientSession, effects: Effects, expect: dict[str, Any], where: str) -> None:
    assert [m.to_wire() for m in effects.send] == expect.get("send", []), where
    if "records" in expect:
        wanted = expect["records"]
        assert len(effects.records) == len(wanted), f"{where}: {effects.records}"
        for record, want in zip(effects.records, wanted, strict=True):
            got = record.to_json()  # the history's JSON form, as the JS client makes it
            assert {k: got.get(k) for k in want} == want, f"{where}: {got}"
    for date, status in expect.get("status", {}).items():
        assert session.channels[date].status == status, where
    for date, position in expect.get("position", {}).items():
        pos = session.channels[date].position
        assert (None if pos is None else [pos.epoch, pos.seq]) == position, where
    for appointment_id, state in expect.get("view", {}).items():
        views = {c.view_state(appointment_id) for c in session.channels.values()} - {None}
        assert views == {state}, where
    for appointment_id, (version, state) in expect.get("rows", {}).items():
        rows = [
            c.rows[appointment_id] for c in session.channels.values() if appointment_id in c.rows
        ]
        assert [(r.version, r.state) for r in rows] == [(version, state)], where
    if "pending" in expect:
        assert sorted(session.pending) == sorted(expect["pending"]), where


def new_session(config: dict[str, Any]) -> ClientSession:
    return ClientSession(
        SessionConfig(
            client_id=config["clientId"],
            dates=tuple(config["dates"]),
            gap_timeout=config["gapTimeout"],
            write_timeout=config["writeTimeout"],
        )
    )


def test_every_rule_has_a_vector_and_the_files_are_current() -> None:
    assert {path.stem for path in FILES} == set(VECTORS)
    for path in FILES:
        assert json.loads(path.read_text()) == VECTORS[path.stem], f"regenerate {path.name}"


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    session = new_session(vector["config"])
    for index, step in enumerate(vector["steps"]):
        effects = run_step(session, step)
        check(session, effects, step.get("expect", {}), f"{path.stem} step {index}")


def test_a_wrong_expectation_fails() -> None:
    """The runner really compares: a vector with one wrong expectation is caught."""
    vector = json.loads((VECTOR_DIR / "duplicates_acked_and_ignored.json").read_text())
    session = ClientSession(SessionConfig(client_id="t", dates=tuple(vector["config"]["dates"])))
    steps = vector["steps"]
    for step in steps[:5]:
        run_step(session, step)
    dup = steps[5]
    with pytest.raises(AssertionError):
        check(session, run_step(session, dup), {"records": [{"k": "apply", "seq": 1}]}, "bad")


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what the two languages may word differently: a JSON parser's
    message (the code and the ``server sent:`` prefix stay)."""
    if record["k"] == "error" and record["message"].startswith("server sent: "):
        return {**record, "message": "server sent: …"}
    return record


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_the_js_client_makes_the_same_messages_and_records(path: Path) -> None:
    """Step by step, every message and every history record of the JS client equals the
    Python core's JSON form, field for field (beyond what the vectors spell out)."""
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    assert node is not None
    runner = Path(__file__).parents[1] / "js" / "run_vector.mjs"
    script = (
        f"import({json.dumps(runner.as_uri())})"
        f".then((m) => console.log(JSON.stringify(m.effectsOf({json.dumps(str(path))}))))"
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    js_steps = json.loads(done.stdout)
    vector = json.loads(path.read_text())
    session = new_session(vector["config"])
    for index, (step, js) in enumerate(zip(vector["steps"], js_steps, strict=True)):
        effects = run_step(session, step)
        where = f"{path.stem} step {index}"
        assert js["send"] == [m.to_wire() for m in effects.send], where
        assert [comparable(r) for r in js["records"]] == [
            comparable(r.to_json()) for r in effects.records
        ], where
