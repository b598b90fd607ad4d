"""The write path: commit first, then publish (guarantee 1); always a ``result``."""

from __future__ import annotations

import logging

from synccli.clock import utc_now
from synccli.domain.channels import WriteOutcome
from synccli.errors import (
    DatabaseTimeout,
    DatabaseUnavailable,
    SynccliError,
    TransientDatabaseError,
    WriteRejected,
)
from synccli.protocol.messages import Result, UpdateAppointmentState
from synccli.server.bugs import build_phantom
from synccli.server.services import Services

log = logging.getLogger(__name__)

_UNAVAILABLE = "the database is unavailable ({}); nothing was stored, retry with the same requestId"
_TIMEOUT = "{}; the change may still commit: retry with the same requestId to learn its outcome"


def failed(services: Services, request_id: str, code: str, message: str) -> Result:
    """A ``result`` with ``ok: false``, counted by code."""
    services.metrics.writes_failed[code] += 1
    return Result(request_id, False, error_code=code, error_message=message)


async def perform_write(services: Services, request: UpdateAppointmentState) -> Result:
    """Run the write transaction in a database thread, publish its event, answer."""
    outcome: WriteOutcome | None = None
    attempts = services.config.write_retries + 1
    for attempt in range(attempts):
        try:
            outcome = await services.db.run(services.store.write, request.to_request(), utc_now())
            break
        except WriteRejected as exc:
            return failed(services, request.request_id, exc.code, exc.message)
        except TransientDatabaseError as exc:
            # A deadlock victim rolled back; the request id makes a retry safe.
            services.metrics.inc("db_errors_total")
            if attempt + 1 == attempts:
                return failed(
                    services, request.request_id, "db_unavailable", _UNAVAILABLE.format(exc)
                )
            services.metrics.inc("write_db_retries_total")
        except DatabaseTimeout as exc:
            services.metrics.inc("db_errors_total")
            return failed(services, request.request_id, "db_unavailable", _TIMEOUT.format(exc))
        except DatabaseUnavailable as exc:
            services.metrics.inc("db_errors_total")
            return failed(services, request.request_id, "db_unavailable", _UNAVAILABLE.format(exc))
    assert outcome is not None  # the loop either breaks with an outcome or returns
    if outcome.event is not None:
        services.metrics.inc("events_committed_total")
        services.publish(outcome.event)
    services.metrics.inc("writes_total")
    return Result(request.request_id, True, outcome.row, outcome.seq)


async def phantom_write(services: Services, request: UpdateAppointmentState) -> Result:
    """The broadcast-before-commit bug: publish the event the write would make, never commit
    (when there is nothing to build it from, the write goes through ``services.write``)."""
    try:
        phantom = await services.db.run(
            build_phantom, services.store, request.to_request(), utc_now()
        )
    except SynccliError:
        return await services.write(request)
    log.warning("inject-bug broadcast-before-commit: phantom %s", phantom.message_id)
    services.publish(phantom)
    return failed(services, request.request_id, "db_unavailable", _UNAVAILABLE.format("verify"))
