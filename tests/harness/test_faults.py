"""The fault schedule runner: seeded targets, every step recorded, failures recorded and
counted rather than raised, healing idempotent."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, cast

from synccli.harness.run import server_options
from synccli.harness.scenario import FaultSpec, ServerOptions
from synccli.harness.schedule import FaultRunner, FaultTargets
from synccli.harness.server_process import parse_prometheus
from synccli.history import Record, Resync
from tests.conftest import seconds

if TYPE_CHECKING:
    from synccli.faults.loss import LossLink
    from synccli.faults.toxiproxy import ToxiproxyFaults
    from synccli.harness.server_process import ServerProcess


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, client_id: str | None, record: Record) -> None:
        self.records.append({"c": client_id, **record.to_json()})


class FakeProxies:
    """Stands in for ToxiproxyFaults' call surface, recording what was asked (cast to it
    where ``FaultTargets`` takes it, as the other fakes are to what they stand in for)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def add_toxic(
        self, groups: list[int], kind: str, stream: str, attrs: dict[str, Any]
    ) -> list[str]:
        self.calls.append(("add", tuple(groups), kind, stream))
        return [f"{kind}-{stream}"] * len(groups)

    def remove_toxic(self, groups: list[int], name: str) -> None:
        self.calls.append(("remove", tuple(groups), name))

    def set_enabled(self, groups: list[int], enabled: bool) -> None:
        self.calls.append(("enabled", tuple(groups), enabled))


def _run(runner: FaultRunner) -> None:
    asyncio.run(runner.run(time.monotonic()))


def test_groups_are_a_seeded_share_with_at_least_one() -> None:
    runner = FaultRunner((), FaultTargets(groups=10), Recorder(), seed=5)
    first = runner._pick_groups(0, 0.3)
    assert len(first) == 3 and first == runner._pick_groups(0, 0.3)
    assert len(runner._pick_groups(1, 0.01)) == 1
    assert runner._pick_groups(2, 1.0) == list(range(10))
    other = FaultRunner((), FaultTargets(groups=10), Recorder(), seed=6)
    assert [other._pick_groups(i, 0.5) for i in range(5)] != [
        runner._pick_groups(i, 0.5) for i in range(5)
    ]


def test_a_toxic_on_both_streams_is_applied_then_healed() -> None:
    proxies, history = FakeProxies(), Recorder()
    spec = FaultSpec(at_s=0, for_s=0.01, kind="latency", target=1.0, stream="both",
                     attrs={"latency": 10}, name="slow")  # fmt: skip
    targets = FaultTargets(proxies=cast("ToxiproxyFaults", proxies), groups=2)
    _run(FaultRunner((spec,), targets, history, seed=1))
    assert [c[0] for c in proxies.calls] == ["add", "add", "remove", "remove"]
    assert {c[3] for c in proxies.calls[:2]} == {"upstream", "downstream"}
    assert [r["phase"] for r in history.records] == ["start", "end"]
    assert history.records[0]["groups"] == [0, 1]


def test_a_fault_that_cannot_be_applied_is_recorded_and_counted() -> None:
    history = Recorder()
    specs = (
        FaultSpec(at_s=0, for_s=0.01, kind="down", name="no-proxy"),
        FaultSpec(at_s=0, for_s=0.01, kind="packet_loss", attrs={"percent": 5}, name="loss"),
        FaultSpec(at_s=0, for_s=0.01, kind="server_kill", name="kill"),
    )
    targets = FaultTargets(groups=1, netns_unavailable="needs root")
    runner = FaultRunner(specs, targets, history, seed=1)
    _run(runner)
    assert runner.failed == 3
    errors = {r["name"]: r["error"] for r in history.records if r["phase"] == "error"}
    assert "needs the proxy" in errors["no-proxy"]
    assert "needs root" in errors["loss"]
    assert "needs the embedded server" in errors["kill"]


def test_heal_all_heals_what_is_active_once() -> None:
    proxies, history = FakeProxies(), Recorder()
    spec = FaultSpec(at_s=0, for_s=30, kind="down", name="outage")
    targets = FaultTargets(proxies=cast("ToxiproxyFaults", proxies), groups=1)
    runner = FaultRunner((spec,), targets, history, seed=1)

    async def scenario() -> None:
        task = asyncio.create_task(runner.run(time.monotonic()))
        while not runner.active:
            await asyncio.sleep(0)
        await runner.heal_all()
        await runner.heal_all()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert proxies.calls == [("enabled", (0,), False), ("enabled", (0,), True)]
    assert [r["phase"] for r in history.records] == ["start", "end"]


def test_server_options_and_prometheus_parsing() -> None:
    options = server_options(ServerOptions(heartbeat_s=1.0, max_retries=2))
    assert options == ["--heartbeat", "1.0", "--max-retries", "2"]
    text = (
        "# HELP synccli_acks_total acks\n# TYPE synccli_acks_total counter\n"
        "synccli_acks_total 12\n"
        'synccli_writes_failed_total{code="conflict"} 2\n'
        'synccli_writes_failed_total{code="db_unavailable"} 3\nbroken line\n'
    )
    assert parse_prometheus(text) == {
        "synccli_acks_total": 12.0,
        "synccli_writes_failed_total": 5.0,
    }


class FakeNetns:
    """Stands in for PacketLossNamespace: each loss rule 'drops' ``per_rule`` packets."""

    def __init__(self, per_rule: int) -> None:
        self.per_rule = per_rule
        self.total = 7  # drops of an earlier window must not count for this one
        self.rules: list[tuple[float, str]] = []

    def set_loss(self, percent: float, direction: str = "both") -> None:
        self.rules.append((percent, direction))

    def clear_loss(self) -> None:
        self.total += self.per_rule

    def dropped(self) -> int:
        return self.total


def test_packet_loss_uses_the_stream_and_records_the_drops_of_its_window() -> None:
    history, netns = Recorder(), FakeNetns(per_rule=42)
    spec = FaultSpec(at_s=0, for_s=0.01, kind="packet_loss", stream="downstream",
                     attrs={"percent": 10}, name="loss")  # fmt: skip
    targets = FaultTargets(netns=cast("LossLink", netns), groups=1)
    _run(FaultRunner((spec,), targets, history, seed=1))
    assert netns.rules == [(10.0, "downstream")]
    end = history.records[-1]
    assert (end["phase"], end["evidence"]) == ("end", {"packets_dropped": 42})


class FakeServer:
    """Answers fault hooks; a client reacts while the call is still in flight."""

    def __init__(self, history: Recorder) -> None:
        self.history = history

    async def admin(self, path: str, **params: Any) -> dict[str, Any]:
        self.history.write("c000", Resync("2026-11-26", "epoch_changed"))
        return {}


def test_the_window_opens_before_the_fault_acts() -> None:
    history = Recorder()
    spec = FaultSpec(at_s=0, for_s=0, kind="epoch_reset", name="reset")
    server = cast("ServerProcess", FakeServer(history))
    targets = FaultTargets(server=server, dates=("2026-11-26",))
    _run(FaultRunner((spec,), targets, history, seed=1))
    assert [(r["k"], r.get("phase")) for r in history.records] == [
        ("fault", "start"),
        ("resync", None),
        ("fault", "end"),
    ]


class FakeDbServer:
    """Answers the db-fault hook and counts database errors while the fault is on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors = 4  # errors before the window must not count for it

    async def admin(self, path: str, **params: Any) -> dict[str, Any]:
        self.calls.append((path, params))
        if params.get("mode") == "off":
            self.errors += 3
        return {}

    async def metrics(self) -> dict[str, float]:
        return {"synccli_db_errors_total": float(self.errors)}


def test_db_fault_is_dispatched_with_its_attributes_and_counts_its_errors() -> None:
    history, server = Recorder(), FakeDbServer()
    spec = FaultSpec(at_s=0, for_s=0.01, kind="db_fault", name="dl",
                     attrs={"mode": "deadlock", "rate": 0.5, "delay_ms": 0})  # fmt: skip
    targets = FaultTargets(server=cast("ServerProcess", server))
    runner = FaultRunner((spec,), targets, history, seed=9)
    _run(runner)
    assert server.calls == [
        ("db-fault", {"mode": "deadlock", "seed": 9, "rate": 0.5, "delay_ms": 0}),
        ("db-fault", {"mode": "off"}),
    ]
    assert history.records[-1]["evidence"] == {"db_errors": 3}


def test_a_kind_without_a_runner_is_recorded_as_an_error() -> None:
    history = Recorder()
    runner = FaultRunner((FaultSpec(0, 0.01, "gremlins", name="g"),), FaultTargets(), history, 1)
    _run(runner)
    assert runner.failed == 1
    assert history.records[-1]["error"] == "unknown fault kind 'gremlins'"


class SlowProxies(FakeProxies):
    """Disabling takes ``apply_s`` (as over a thousand connections); times every call."""

    def __init__(self, apply_s: float) -> None:
        super().__init__()
        self.apply_s = apply_s
        self.at: list[tuple[bool, float]] = []

    def set_enabled(self, groups: list[int], enabled: bool) -> None:
        if not enabled:
            time.sleep(self.apply_s)
        self.at.append((enabled, time.monotonic()))
        super().set_enabled(groups, enabled)


def test_the_heal_is_due_at_its_scheduled_time_however_long_the_apply_took() -> None:
    apply_s, at_s, for_s = seconds(0.6), seconds(0.2), seconds(1.0)
    proxies, history = SlowProxies(apply_s), Recorder()
    spec = FaultSpec(at_s=at_s, for_s=for_s, kind="down", name="outage")
    t0 = time.monotonic()
    targets = FaultTargets(proxies=cast("ToxiproxyFaults", proxies), groups=1)
    asyncio.run(FaultRunner((spec,), targets, history, 1).run(t0))
    (_, disabled_at), (enabled, healed_at) = proxies.at
    assert enabled and disabled_at - t0 >= at_s + apply_s
    # Counting ``for_s`` from the end of the apply would heal ``apply_s`` late.
    assert at_s + for_s <= healed_at - t0 < at_s + for_s + apply_s / 2
    assert [r["phase"] for r in history.records] == ["start", "end"]


def test_a_run_ending_while_a_fault_is_applied_still_heals_it() -> None:
    proxies, history = SlowProxies(seconds(0.5)), Recorder()
    spec = FaultSpec(at_s=0, for_s=30, kind="down", name="outage")
    targets = FaultTargets(proxies=cast("ToxiproxyFaults", proxies), groups=1)
    runner = FaultRunner((spec,), targets, history, seed=1)

    async def scenario() -> None:
        task = asyncio.create_task(runner.run(time.monotonic()))
        while not history.records:  # the start record: the apply is in flight
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.heal_all()

    asyncio.run(scenario())
    assert proxies.calls == [("enabled", (0,), False), ("enabled", (0,), True)]
    assert [r["phase"] for r in history.records] == ["start", "end"]
