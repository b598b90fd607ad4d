"""A writer process for the crash and multi-process tests.

``python -m tests.store.writer URL DATE APPOINTMENTS COUNT [SEED]`` writes up to COUNT state
changes to random appointments of DATE and prints each committed sequence number on its own
line, flushed, after the commit returned: every printed number is durable.
"""

from __future__ import annotations

import random
import sys

from synccli.clock import utc_now
from synccli.domain.channels import WriteRequest
from synccli.domain.states import allowed_targets
from synccli.errors import WriteRejected
from synccli.store import open_store


def main(url: str, date: str, appointments: int, count: int, seed: int) -> None:
    rng = random.Random(seed)
    store = open_store(url)
    rows = {r.appointment_id: r for r in store.snapshot(date)[1]}
    ids = sorted(rows)[:appointments]
    try:
        for n in range(count):
            key = rng.choice(ids)
            target = rng.choice(allowed_targets(rows[key].state))
            request = WriteRequest(f"w{seed}-{n}", key, target)
            try:
                outcome = store.write(request, utc_now())
            except WriteRejected:
                # Another process moved the row first: refresh and carry on.
                rows = {r.appointment_id: r for r in store.snapshot(date)[1]}
                continue
            rows[key] = outcome.row
            print(outcome.seq, flush=True)
    finally:
        store.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], int(args[2]), int(args[3]), int(args[4]) if len(args) > 4 else 1)
