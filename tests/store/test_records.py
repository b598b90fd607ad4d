"""The stored forms of the write path: the idempotency record embeds the event payload."""

from __future__ import annotations

import json

import pytest

from synccli.domain.channels import WriteRequest
from synccli.domain.values import Row
from synccli.errors import WriteRejected
from synccli.store.records import payload_of, replay, result_of

ROW = Row("2099-01-01-0001", "2099-01-01", 'Patient "Ü"', "Present", "t", 2, "t")


def test_result_record_is_json_with_the_payload_row() -> None:
    request = WriteRequest("r-1", ROW.appointment_id, "Present", expected_version=1)
    record = json.loads(result_of(request, 7, payload_of(ROW)))
    assert record == {"fingerprint": request.fingerprint(), "seq": 7, "row": ROW.to_wire()}


def test_result_record_replays_its_outcome_and_refuses_other_content() -> None:
    request = WriteRequest("r-1", ROW.appointment_id, "Present")
    stored = result_of(request, 7, payload_of(ROW))
    outcome = replay(request, stored)
    assert (outcome.row, outcome.seq, outcome.replayed) == (ROW, 7, True)
    other = WriteRequest("r-1", ROW.appointment_id, "Cancelled")
    with pytest.raises(WriteRejected) as rejected:
        replay(other, stored)
    assert rejected.value.code == "request_id_reused"
