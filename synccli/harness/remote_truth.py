"""Ground truth from a server's own log, through the protocol, for ``simulate --url`` runs
without ``--db``: a snapshot and a replay of every event from sequence 0, per date."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import connect

from synccli.client.tls import client_context
from synccli.domain.values import Event, Row
from synccli.errors import InfrastructureError
from synccli.protocol.messages import (
    GetSnapshot,
    MissedEvents,
    RequestMissedEvents,
    ResyncRequired,
    ServerMessage,
    Snapshot,
    dumps,
    parse_server_message,
)

TIMEOUT_S = 30.0


async def _fetch(
    url: str, token: str | None, dates: tuple[str, ...], ca_file: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    result: dict[str, Any] = {}
    async with (
        asyncio.timeout(TIMEOUT_S),
        connect(
            url,
            additional_headers=headers,
            compression=None,
            max_size=None,
            ssl=client_context(url, ca_file),
        ) as ws,
    ):

        async def answer(kinds: tuple[type, ...]) -> ServerMessage:
            while True:
                message = parse_server_message(await ws.recv())
                if isinstance(message, kinds):
                    return message

        for date in dates:
            await ws.send(dumps(GetSnapshot(date).to_wire()))
            snap = await answer((Snapshot,))
            assert isinstance(snap, Snapshot)
            await ws.send(dumps(RequestMissedEvents(date, 0, snap.epoch).to_wire()))
            missed = await answer((MissedEvents, ResyncRequired))
            events: list[Event] = missed.events if isinstance(missed, MissedEvents) else []
            rows: list[Row] = snap.appointments
            result[date] = {"epoch": snap.epoch, "head": snap.seq, "events": events, "rows": rows}
    return result


def truth_from_server(
    url: str, token: str | None, dates: tuple[str, ...], ca_file: str | None = None
) -> Any:
    """The truth of ``dates`` as the server at ``url`` reports it."""
    from synccli.report.truth import truth_from_data

    try:
        data = asyncio.run(_fetch(url, token, dates, ca_file))
    except (OSError, TimeoutError) as exc:
        raise InfrastructureError(f"could not read the server's log at {url}: {exc}") from None
    return truth_from_data(data)
