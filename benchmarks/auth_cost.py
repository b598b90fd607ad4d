"""What per-user authorisation costs, per message and per handshake, without sockets.

    python benchmarks/auth_cost.py

Per message: a ``ServerSession`` answering ``get_snapshot`` refused as ``forbidden`` (the
check and the answer, no store) and the checks alone (``may_read`` of a date, ``may_write``
of an appointment id) for full access and for a narrow token. Per handshake: verifying a
signed token (HS256) into a ``Grant``. The session's share of a live delivery is nothing:
``deliver`` does not look at the authorisation (rights are checked when subscribing).
"""

from __future__ import annotations

import timeit

import click
from tabulate import tabulate

from synccli.protocol.authz import FULL_ACCESS, Authorisation
from synccli.protocol.server_ops import ServerSessionConfig
from synccli.protocol.server_session import ServerSession
from synccli.server.auth import JwtAuth
from synccli.server.hub import Hub
from synccli.tokens import hmac_key, mint_token

SECRET = "b" * 40


class _Nobody:
    def deliver(self, event: object, frame: bytes) -> None: ...

    def resync(self, date: str, reason: str) -> None: ...

    def needs(self, date: str) -> int | None: ...


def _per_call_us(func: object, number: int) -> float:
    timer = timeit.Timer(func)  # type: ignore[arg-type]
    return min(timer.repeat(5, number)) / number * 1e6


@click.command()
@click.option("--number", default=100_000, show_default=True, help="Calls per measurement.")
def main(number: int) -> None:
    """Print microseconds per authorisation check, forbidden answer and token verification."""
    narrow = Authorisation("alice", ("2026-11-*", "2027-01-02"), write=True)
    rows: list[list[object]] = []
    for name, auth in (("full access", FULL_ACCESS), ("narrow token", narrow)):
        read_us = _per_call_us(lambda a=auth: a.may_read("2026-11-26"), number)
        write_us = _per_call_us(lambda a=auth: a.may_write("2026-11-26-0001"), number)
        rows += [[name, "may_read(date)", read_us], [name, "may_write(id)", write_us]]
    session = ServerSession(
        ServerSessionConfig(), Hub(16), _Nobody(), 0.0, auth=Authorisation("x", ("2030-*",))
    )
    frame = '{"type":"get_snapshot","date":"2026-11-26"}'
    refused_us = _per_call_us(lambda: session.receive(frame, 1.0), number // 10)
    rows.append(["narrow token", "forbidden get_snapshot", refused_us])
    verifier = JwtAuth(hmac_key(SECRET), ["HS256"], 30.0)
    signed = mint_token(SECRET, "alice", ("2026-*",), True, 3600)
    verify_us = _per_call_us(lambda: verifier.verify(signed), number // 10)
    rows.append(["handshake", "HS256 verify + grant", verify_us])
    click.echo(tabulate(rows, headers=["credential", "what", "µs per call"], floatfmt=".2f"))


if __name__ == "__main__":
    main()
