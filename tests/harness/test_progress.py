"""The progress line: phase, counters and rates in each frame; totals and average rates in
the final one; a rewritten line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from synccli.harness.progress import ProgressLine, Snapshot, StatusText


def _snap(at_s: float, phase: str, applied: int, writes: int, **kw: int) -> Snapshot:
    counters = {"applied": applied, "writes_ok": writes, "connected": kw.get("connected", 4)}
    return Snapshot.of(at_s, phase, kw.get("committed", writes), 4, counters, ("offline",))


def test_frames_show_the_phase_and_the_rates_since_the_previous_frame() -> None:
    text = StatusText(duration_s=20)
    first = text.line(_snap(5.0, "load", applied=400, writes=50))
    assert first == (
        "[  5.0s/20s] load  committed 50 applied 400 (80.0/s) connected 4/4"
        " writes ok 50 (10.0/s) failed 0 faults offline"
    )
    second = text.line(_snap(10.0, "heal", applied=1400, writes=100))
    assert " heal " in second
    assert "applied 1400 (200/s)" in second  # 1000 more in 5 s
    assert "writes ok 100 (10.0/s)" in second


def test_the_final_frame_has_the_totals_and_average_rates() -> None:
    text = StatusText(duration_s=20)
    text.line(_snap(19.0, "drain", applied=3000, writes=380))
    final = text.line(_snap(22.0, "check", applied=3080, writes=400, connected=3), final=True)
    assert final.startswith("[ 22.0s/20s] check committed 400 applied 3080 (avg 140/s)")
    assert "connected 3/4" in final and "writes ok 400 (avg 18.2/s)" in final


def test_missing_counters_are_zero_and_no_time_means_no_rate() -> None:
    frame = StatusText(10).line(Snapshot.of(0.0, "load", 0, 2, {}))
    assert "applied 0 (0/s) connected 0/2 writes ok 0 (0/s) failed 0 faults -" in frame


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_rewritten_line_and_a_log_gets_lines() -> None:
    terminal = _Terminal()
    line = ProgressLine(lambda: "unused", stream=terminal)
    line.show("a long first frame")
    line.show("short")
    line.say("packet loss skipped")
    line.show("next")
    line.finish()
    assert terminal.getvalue() == (
        "\ra long first frame\rshort             \npacket loss skipped\n\rnext\n"
    )
    log = io.StringIO()
    frames = iter(["one", "two"])
    plain = ProgressLine(lambda: next(frames), stream=log)
    plain.tick()
    plain.tick()  # within the 5 s interval: not drawn
    plain.tick(force=True)
    plain.finish()
    assert log.getvalue() == "one\ntwo\n"
    quiet = ProgressLine(lambda: "x", stream=log, enabled=False)
    quiet.tick(force=True)
    quiet.show("y")
    assert log.getvalue() == "one\ntwo\n"
