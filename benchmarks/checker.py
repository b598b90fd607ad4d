"""The checker at scale: ``synccli report``'s work on a long run against a bare ``json.loads``
loop over the same file, in the same run.

    python benchmarks/checker.py                       # 10 M applies, a few minutes
    python benchmarks/checker.py --applies 1000000     # quick
    python benchmarks/checker.py --applies 300000 --before
    python benchmarks/checker.py --no-report           # 10 M applies, the check only
    python benchmarks/checker.py --applies 1000000 --repeat 3

It writes a run folder (``--out``, default a temporary folder): a history of ``--clients``
clients (default 100) that each apply every event of one date, through the real
``HistoryWriter`` with one shared ``Apply`` per event as a process of clients does (so in
the compact form of docs/history.md), plus a write and its result per event, and a
``truth.json`` to match. Each case then runs in a fresh subprocess, which reports its time
and peak RSS (``resource.getrusage``):

- ``json.loads loop``: the baseline, every line parsed, nothing kept; ``orjson.loads
  loop`` and ``msgspec loop`` likewise with those decoders (when installed), ``msgspec
  batches`` the reader's fast path (``fast_json.decode_heads``: a batch of lines at once,
  only the envelope and the apply fields);
- ``check``: ``load_history`` and ``check_records``, what the checker costs; ``check
  (json)`` the same with the standard library's decoder only (no msgspec);
- ``report``: ``check_run``, the whole summary (metrics, fault windows, timeline, verdict)
  in one pass after a search for the fault lines;
- ``report (before)`` with ``--before``: the in-memory path this replaced (the whole file
  parsed into a list, each part reading it again, the reference checker and summary of
  tests/report), on the same history written in full, as before compact applies. It needs
  about 2.3 KB per apply: keep ``--applies`` small.

The history is generated in a child process, so the cases, started from this small
process, report their own peak. Records/s is the history's lines over the case's time:
wall-clock time (``s``) and, less disturbed by other processes on a busy machine, the
process's CPU time (``cpu s``, ``records/cpu s``); each case runs ``--repeat`` times and
the fastest run is shown.
Targets: the check at ≥ 500 k records/s and ≤ 200 MB whatever the length, ≤ 100 bytes per
apply on disk.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from tabulate import tabulate

from synccli.domain.values import iso_ms, message_id
from synccli.history import (
    Apply,
    Connect,
    Final,
    HistoryWriter,
    RunEnd,
    RunStart,
    Subscribed,
    Write,
    WriteResult,
)
from synccli.history import writer as writer_module
from synccli.report.truth import ChannelTruth, CommittedEvent, Truth, write_truth

DATE = "2026-11-26"
EPOCH = "a1b2c3d4e5f6"
APPOINTMENTS = 1000
STATES = ("Present", "Seated", "Dismissed", "Scheduled")

CASES = {
    "json.loads loop": """
import json
for line in open(HISTORY, encoding="utf-8"):
    json.loads(line)
""",
    "orjson.loads loop": """
import orjson
for line in open(HISTORY, "rb"):
    orjson.loads(line)
""",
    "msgspec loop": """
import msgspec
decode = msgspec.json.Decoder().decode
for line in open(HISTORY, "rb"):
    decode(line)
""",
    "msgspec batches": """
from synccli.history import fast_json
with open(HISTORY, encoding="utf-8") as lines:
    while batch := lines.readlines(1 << 20):
        assert fast_json.decode_heads(batch) is not None
""",
    "check (json)": """
from synccli.history import fast_json, load_history
from synccli.report.checker import check_records
from synccli.report.truth import load_truth
fast_json.use_stdlib()
truth = load_truth(RUN / "truth.json")
result = check_records(load_history(HISTORY, lazy=True).entries, truth, on_time_s=5.0)
assert result.overall.delivered == result.overall.expected, "the benchmark run lost events"
""",
    "check": """
from synccli.history import load_history
from synccli.report.checker import check_records
from synccli.report.truth import load_truth
truth = load_truth(RUN / "truth.json")
result = check_records(load_history(HISTORY, lazy=True).entries, truth, on_time_s=5.0)
assert result.overall.delivered == result.overall.expected, "the benchmark run lost events"
""",
    "report": """
from synccli.report import check_run
summary = check_run(RUN)
assert summary.verdict == "pass", summary.reasons
""",
    "report (before)": """
import sys
sys.path.insert(0, ROOT)
from synccli.history import parse_history
from synccli.report.truth import load_truth
from tests.report import summary_reference
history = parse_history((RUN / "full.jsonl").read_text(encoding="utf-8"))
summary = summary_reference.summarize(history, load_truth(RUN / "truth.json"))
assert summary.verdict == "pass", summary.reasons
""",
}
#: Cases that need a library that may be missing.
NEEDS = {"orjson.loads loop": "orjson", "msgspec loop": "msgspec", "msgspec batches": "msgspec"}

MEASURE = """
import resource, time
from pathlib import Path
RUN = Path({run!r}); HISTORY = RUN / "history.jsonl"; ROOT = {root!r}
t0, c0 = time.perf_counter(), time.process_time()
{body}
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
print(elapsed, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


class _Clock:
    """The writer's clock: a run of ``seconds`` replayed as fast as it can be written."""

    def __init__(self, w0: float) -> None:
        self.t = 0.0
        self.w0 = w0

    def monotonic(self) -> float:
        return self.t

    def time(self) -> float:
        return self.w0 + self.t


def generate(run: Path, clients: int, events: int, rate: float) -> int:
    """Write the run folder; returns the history's line count."""
    w0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC).timestamp()
    clock = _Clock(w0)
    # The writer's ``time`` module, for this (child) process: a stand-in with its two calls.
    vars(writer_module)["time"] = clock
    history = HistoryWriter(run / "history.jsonl", 0.0, flush_every=10_000, flush_interval=1e9)
    names = [f"c{n:04d}" for n in range(clients)]
    history.write(None, RunStart(seed=1, run_id="bench", config={"dates": [DATE]}))
    for name in names:
        history.write(name, Connect(1))
        history.write(name, Subscribed(DATE, EPOCH, 0, recovered=False))
    rows = {f"{DATE}-{i:04d}": (1, "Scheduled") for i in range(1, APPOINTMENTS + 1)}
    committed: dict[int, CommittedEvent] = {}
    for seq in range(1, events + 1):
        clock.t = seq / rate
        aid = f"{DATE}-{(seq - 1) % APPOINTMENTS + 1:04d}"
        version = rows[aid][0] + 1
        state = STATES[version % len(STATES)]
        rows[aid] = (version, state)
        at = iso_ms(datetime.fromtimestamp(w0 + clock.t, UTC))
        event = CommittedEvent(seq, message_id(DATE, EPOCH, seq), aid, version, state, at)
        committed[seq] = event
        request = f"r{seq}"
        history.write(names[0], Write(request, aid, state, DATE))
        history.write(names[0], WriteResult(request, True, None, seq, 4.0))
        shared = Apply(DATE, EPOCH, seq, event.event_id, at, False, aid, version, state)
        for name in names:
            clock.t += 0.00001
            history.write(name, shared)
    clock.t += 1.0
    final = Final(DATE, EPOCH, events, {a: [v, s] for a, (v, s) in rows.items()}, "synced")
    for name in names:
        history.write(name, final)
    history.write(None, RunEnd(interrupted=False, drained=True))
    history.close()
    channel = ChannelTruth(DATE, EPOCH, events, 1, committed, rows)
    write_truth(run / "truth.json", Truth({DATE: channel}, "benchmark"))
    return history.count


def write_full(run: Path) -> None:
    """The same history with every apply in full (as before compact applies)."""
    from synccli.history import load_history

    with open(run / "full.jsonl", "w", encoding="utf-8") as out:
        for e in load_history(run / "history.jsonl").entries:
            out.write(json.dumps(e.to_json(), separators=(",", ":")) + "\n")


def measure(run: Path, case: str) -> tuple[float, float, float]:
    """Seconds, CPU seconds and peak RSS in MB of one case, in a fresh interpreter."""
    root = str(Path(__file__).resolve().parent.parent)
    code = MEASURE.format(run=str(run), root=root, body=CASES[case])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise click.ClickException(f"{case} failed: {out.stderr.strip().splitlines()[-1]}")
    elapsed, cpu, maxrss_kb = out.stdout.split()
    return float(elapsed), float(cpu), int(maxrss_kb) / 1024


@click.command()
@click.option("--applies", default=10_000_000, show_default=True, help="Applies in the run.")
@click.option("--clients", default=100, show_default=True, help="Clients applying every event.")
@click.option("--rate", default=40.0, show_default=True, help="Events per second of run time.")
@click.option("--before", is_flag=True, help="Also time the in-memory path it replaced.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder to write (kept).")
@click.option("--no-report", is_flag=True, help="Skip the whole report (the slowest case).")
@click.option("--repeat", default=1, show_default=True, help="Runs per case (the best shown).")
def main(
    applies: int,
    clients: int,
    rate: float,
    before: bool,
    out: Path | None,
    no_report: bool,
    repeat: int,
) -> None:
    events = max(1, applies // clients)
    with tempfile.TemporaryDirectory(prefix="synccli-bench-") as scratch:
        run = out or Path(scratch)
        run.mkdir(parents=True, exist_ok=True)
        (run / "history.jsonl").unlink(missing_ok=True)  # the writer appends
        started = time.perf_counter()
        # In its own process, so that this one stays small: a child's getrusage peak
        # starts at its parent's.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            lines = pool.apply(generate, (run, clients, events, rate))
        size = (run / "history.jsonl").stat().st_size
        click.echo(
            f"history: {lines:,} lines, {events * clients:,} applies ({clients} clients x "
            f"{events:,} events), {size / 1e6:.0f} MB, {size / (events * clients):.1f} bytes "
            f"per apply; written in {time.perf_counter() - started:.0f} s"
        )
        skipped = {"report (before)", *(["report"] if no_report else [])}
        skipped |= {case for case, module in NEEDS.items() if not importlib.util.find_spec(module)}
        cases = [c for c in CASES if c not in skipped]
        if before:
            write_full(run)
            full = (run / "full.jsonl").stat().st_size
            click.echo(f"the same history in full: {full / (events * clients):.1f} bytes per apply")
            cases.append("report (before)")
        results = {
            case: min((measure(run, case) for _ in range(max(1, repeat))), key=lambda m: m[1])
            for case in cases
        }
    _, base_cpu, _ = results["json.loads loop"]
    rows = [
        [
            case,
            f"{s:.1f}",
            f"{lines / s / 1000:.0f}k",
            f"{cpu:.1f}",
            f"{lines / cpu / 1000:.0f}k",
            f"{cpu / base_cpu:.2f}",
            f"{rss:.0f}",
        ]
        for case, (s, cpu, rss) in results.items()
    ]
    headers = ["case", "s", "records/s", "cpu s", "records/cpu s", "x json.loads", "peak RSS MB"]
    click.echo(tabulate(rows, headers=headers))
    click.echo(f"load average: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
