"""The harness's self-test, end to end: every injected bug makes ``synccli report --gate``
fail and name the right anomaly; the legal server behaviours pass.

Each case is a real ``synccli simulate`` (server subprocess, 4 clients, 2 writers, 4 s at 20
writes/s, no network faults) followed by ``synccli report RUN --gate --format json``. The
simulations of the selected cases run in parallel, a few at a time, before the first test
needs one (about 30 s for all of them on 2 cores).

What each bug honestly produces (a correct client absorbs what it can):

- ``skip-events``: nothing is lost: a correct client gives up on a gap the replays never fill
  (``max_missed_requests`` requests, one per ``gap_timeout``) and resyncs from a snapshot,
  which delivers the skipped change ~6 s late: the on-time rate fails.
- ``broadcast-before-commit``: phantoms, and the real event that reuses the phantom's seq is
  taken for a duplicate: lost, and the clients do not converge.
- ``stale-epoch``: the clients never hear of the new epoch: every event of the database's
  new history is lost to them and none converges.
- ``ignore-resync`` (with an ``epoch_reset`` fault; a stale epoch would not tell the client
  anything to ignore): the new epoch's events are lost and the clients do not converge.
- ``no-dedupe`` / ``no-reorder-buffer`` (with ``duplicate-sends`` / ``reorder-sends``):
  duplicates / out-of-order applies.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.report.truth import load_truth
from synccli.server.bugs import SKIP_EVERY
from tests.conftest import SYNCCLI, seconds

pytestmark = pytest.mark.slow

LOAD = ["--quiet", "--clients", "4", "--writers", "2", "--duration", "4", "--rate", "20"]
SEED = 11
# Each simulation uses well under half a core; four at once keep the 2 cores usable.
PARALLEL = 4
ANOMALIES = frozenset(
    {"lost", "duplicates", "out_of_order", "phantoms", "epoch_mixups", "not_converged"}
)
# Runs whose clients never catch up wait out the whole drain: a short one keeps them short.
SHORT_DRAIN = 'description = "bug self-test"\nduration_s = 4\nclients = 4\ndrain_timeout_s = 3\n'
EPOCH_RESET = SHORT_DRAIN + '\n[[faults]]\nkind = "epoch_reset"\nat_s = 2\n'


@dataclass(frozen=True)
class Case:
    """One run and what its report must say."""

    bugs: tuple[str, ...]
    exit_code: int
    found: frozenset[str] = frozenset()  # anomaly counts that must be > 0
    absent: frozenset[str] = ANOMALIES  # anomaly counts that must be 0
    scenario: str | None = None  # TOML text; None: the built-in default, without faults
    trace: str | None = None  # a history record kind proving the bug acted

    def command(self, out: Path) -> list[str]:
        args = [*SYNCCLI, "simulate", *LOAD, "--seed", str(SEED), "--out", str(out)]
        if self.scenario is None:
            args.append("--no-faults")
        else:
            scenario = out.with_suffix(".toml")
            scenario.write_text(self.scenario)
            args += ["--scenario", str(scenario)]
        for bug in self.bugs:
            args += ["--inject-bug", bug]
        return args


def _bad(*found: str, but: tuple[str, ...] = ()) -> dict[str, Any]:
    """A failing case: ``found`` anomalies, the others zero except those in ``but``."""
    return {"found": frozenset(found), "absent": ANOMALIES - set(found) - set(but)}


CASES = {
    "skip-events": Case(("skip-events",), 1, trace="resync"),
    "broadcast-before-commit": Case(
        ("broadcast-before-commit",), 1, **_bad("phantoms", "lost", "not_converged")
    ),
    "stale-epoch": Case(("stale-epoch",), 1, scenario=SHORT_DRAIN, **_bad("lost", "not_converged")),
    "duplicate-sends": Case(("duplicate-sends",), 0, trace="dup"),
    "reorder-sends": Case(("reorder-sends",), 0, trace="gap_recovered"),
    "duplicate-sends+reorder-sends": Case(("duplicate-sends", "reorder-sends"), 0, trace="dup"),
    # A duplicate applied again at once changes no row: convergence is not the point here.
    "duplicate-sends+no-dedupe": Case(
        ("duplicate-sends", "no-dedupe"), 1, **_bad("duplicates", but=("not_converged",))
    ),
    # An older event applied after a newer one may or may not leave a row behind.
    "reorder-sends+no-reorder-buffer": Case(
        ("reorder-sends", "no-reorder-buffer"), 1, **_bad("out_of_order", but=("not_converged",))
    ),
    "epoch_reset+ignore-resync": Case(
        ("ignore-resync",), 1, scenario=EPOCH_RESET, **_bad("lost", "not_converged")
    ),
    "epoch_reset": Case((), 0, scenario=EPOCH_RESET, trace="resync"),
}


@dataclass(frozen=True)
class Outcome:
    """A finished run: the simulate process, the ``report --gate`` answer and the history."""

    folder: Path
    simulate: subprocess.CompletedProcess[str]
    gate_exit: int
    summary: dict[str, Any]
    records: list[dict[str, Any]]


def _simulate(case: Case, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        case.command(out), capture_output=True, text=True, timeout=seconds(120), check=False
    )


def _report(out: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["report", str(out), "--gate", "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """The outcome of every case a test of this module selected, all run up front."""
    names = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    }
    root = tmp_path_factory.mktemp("bugs")
    with ThreadPoolExecutor(PARALLEL) as pool:
        started = {name: pool.submit(_simulate, CASES[name], root / name) for name in names}
        finished = {name: future.result() for name, future in started.items()}
    outcomes = {}
    for name, simulate in finished.items():
        out = root / name
        gate_exit, summary = _report(out)
        lines = (out / "history.jsonl").read_text().splitlines()
        records = [json.loads(x) for x in lines]
        outcomes[name] = Outcome(out, simulate, gate_exit, summary, records)
    return outcomes


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_gate_names_what_the_bug_does(name: str, runs: dict[str, Outcome]) -> None:
    case, run = CASES[name], runs[name]
    assert run.simulate.returncode == case.exit_code, run.simulate.stdout + run.simulate.stderr
    assert run.gate_exit == case.exit_code, run.summary["reasons"]
    summary = run.summary
    # Enough for every bug to act (skip-events stalls the writers at its first gap).
    assert summary["events_committed"] > SKIP_EVERY
    assert {kind for kind in case.found if summary[kind] == 0} == set(), summary["reasons"]
    assert {kind for kind in case.absent if summary[kind] != 0} == set(), summary["reasons"]
    if case.trace is not None:
        assert any(r["k"] == case.trace for r in run.records), f"no {case.trace!r} record"
    start = run.records[0]
    assert sorted(start["server_bugs"] + start["client_bugs"]) == sorted(case.bugs)


@pytest.mark.parametrize("name", ["skip-events"])
def test_skipped_events_are_late_and_each_gap_is_given_up_once(
    name: str, runs: dict[str, Outcome]
) -> None:
    summary, records = runs[name].summary, runs[name].records
    failed = {t["metric"] for t in summary["thresholds"] if not t["ok"]}
    assert failed == {"on_time_rate"}
    # One gap record per gap (not one per request or held event), each ended by one resync
    # after the bounded requests: no replay fills it.
    resyncs = [r for r in records if r["k"] == "resync"]
    assert {r["reason"] for r in resyncs} == {"gap_unfilled"}
    assert summary["gaps_detected"] == summary["resyncs"] == len(resyncs) >= 4
    assert summary["gap_recoveries"] == 0


@pytest.mark.parametrize("name", ["broadcast-before-commit"])
def test_each_phantom_is_reported_with_the_real_event_it_displaced(
    name: str, runs: dict[str, Outcome]
) -> None:
    summary = runs[name].summary
    failed_writes = summary["writes"]["failed"]
    # Every phantom turn answered its writer db_unavailable. (Writers that believe a phantom
    # state may then also ask for transitions the database refuses: invalid_transition.)
    assert failed_writes["db_unavailable"] > 0
    assert set(failed_writes) <= {"db_unavailable", "invalid_transition"}
    # Each client applied each phantom at most once; the real event committed later under
    # the phantom's seq was never sent to a client that already had that seq (the phantom
    # of the last write has no successor, so lost <= phantoms).
    assert (
        0
        < summary["lost"]
        <= summary["phantoms"]
        <= summary["clients"] * failed_writes["db_unavailable"]
    )


def _html_cells(row: str) -> list[str]:
    return [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]


@pytest.mark.parametrize("name", ["broadcast-before-commit"])
def test_the_time_travel_view_shows_the_phantom_beside_the_real_event(
    name: str, runs: dict[str, Outcome]
) -> None:
    run = runs[name]
    phantom = next(
        a
        for a in run.summary["anomalies"]
        if a["kind"] == "phantom" and "but the database committed" in a["detail"]
    )
    client, date, seq = phantom["client"], phantom["date"], phantom["seq"]
    real = load_truth(run.folder / "truth.json").channels[date].events[seq]
    shown = subprocess.run(
        [*SYNCCLI, "report", str(run.folder), "--client", client, "--around", str(seq)],
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    _header, _rule, *lines = shown.stdout.splitlines()
    # t, date, seq, "apply APPOINTMENT STATE vN", the database's "APPOINTMENT STATE vM", check
    cells = [[word for word in line.split() if word != "(replay)"] for line in lines]
    at_seq = [row for row in cells if row[1:4] == [date, str(seq), "apply"]]
    assert at_seq, shown.stdout
    row = at_seq[0]
    assert row[-1] == "phantom", shown.stdout
    assert row[7:10] == [real.appointment_id, real.state, f"v{real.version}"], shown.stdout
    assert row[4:7] != row[7:10]  # what the client applied is not what was committed
    # report.html links this anomaly to a section that shows the same view.
    page = (run.folder / "report.html").read_text(encoding="utf-8")
    links = [
        re.search(r'href="#(anomaly-\d+)"', tr)
        for tr in re.findall(r"<tr>(.*?)</tr>", page)
        if _html_cells(tr)[:4] == ["phantom", client, date, str(seq)]
    ]
    assert links and links[0] is not None, "no link from the anomaly table"
    target = links[0].group(1)
    section = re.search(rf'<section class="excerpt" id="{target}">(.*?)</section>', page)
    assert section is not None, f"the link target #{target} does not exist"
    view = re.search(r'<code class="view">(.*?)</code>.*?<table>(.*?)</table>', section.group(1))
    assert view is not None, "the section has no client view"
    assert html.unescape(view.group(1)).endswith(f"--client {client} --around {seq}")
    rows = [_html_cells(tr) for tr in re.findall(r"<tr>(.*?)</tr>", view.group(2))][1:]
    assert [" ".join(" ".join(cells).split()) for cells in rows] == [
        " ".join(line.split()) for line in lines
    ]
