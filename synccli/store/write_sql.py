"""The whole write path as one statement (PostgreSQL) or one batch (SQL Server).

``Store.write`` step by step is seven statements: begin, lock the row and look the request
id up, update, bump the channel, insert the event, insert the request record, commit. Over
a network each is a round trip, and the channel's row lock is held across all of them. Here
the same steps are one piece of SQL the database runs on its own, so a check-in is one
round trip and the channel lock lasts one statement (and its commit):

* PostgreSQL: data-modifying CTEs in autocommit. The locked row (``FOR UPDATE``) gates the
  update; the channel is created or bumped by one ``INSERT … ON CONFLICT DO UPDATE``.
* SQL Server: a batch of plain statements on table variables between ``BEGIN TRANSACTION``
  and ``COMMIT TRANSACTION`` (``XACT_ABORT``: any error rolls all of it back).

Both take the parameters ``WRITE_PARAMS`` in that order, each exactly once, and return one
row: the locked row before the write (NULLs if there is none), the stored result of the
request id (NULL if new), and the channel's epoch and new head (NULL if nothing was
written). What the row means (replay, a rejection, the outcome) is decided by the engine,
with the same rules as the step-by-step path. The event's payload and the request record
are assembled in SQL from pieces built in Python (``synccli.store.records.payload_parts``)
around the three values only the database knows: the row's date, patient and version.

The verify step of the step-by-step path (the row as stored is exactly the intended change)
runs in the SQL too: a row that differs makes the statement fail on a cast of ``VERIFY_FAILED``
(so nothing of it is written), which the engine reports as not stored as written.
"""

from __future__ import annotations

from synccli.domain.states import TRANSITIONS

#: The parameters of the one-round-trip write, in order.
WRITE_PARAMS = (
    "request_id",
    "appointment_id",
    "state",
    "expected",
    "stamp",
    "actor",
    "epoch",
    "head",
    "to_patient",
    "to_version",
    "tail",
    "result_head",
    "result_mid",
)

#: The text a failed verification casts to an integer (it appears in the driver's error).
VERIFY_FAILED = "synccli: row not stored as written"

_ROW = ("appointment_id", "date", "patient", "state", "state_time", "version", "updated_at")
_AUDIT = "actor, from_state, from_state_time, from_updated_at"
_EVENT_COLUMNS = f"date, seq, event_id, appointment_id, request_id, payload, committed_at, {_AUDIT}"
_REQUEST_COLUMNS = "request_id, date, seq, result, created_at"
#: A text value as a JSON string: PostgreSQL's ``to_json``, SQL Server's ``STRING_ESCAPE``.
_PG_QUOTE = "to_json({})"
_TSQL_QUOTE = "'\"', STRING_ESCAPE({}, 'json'), '\"'"


def _transitions() -> str:
    """Every allowed (from, to) pair as a ``VALUES`` list, from the domain's table."""
    pairs = sorted((a, b) for a, targets in TRANSITIONS.items() for b in targets)
    return ", ".join(f"('{a}', '{b}')" for a, b in pairs)


def _types(key: str, short: str, big: str, text: str) -> dict[str, str]:
    """Each parameter's SQL type."""
    return {
        "request_id": key,
        "appointment_id": key,
        "state": short,
        "expected": big,
        "stamp": short,
        "actor": key,
        "epoch": short,
        **{name: text for name in WRITE_PARAMS[7:]},
    }


def _checks(a: str, w: str) -> str:
    """The rules of a write against the locked row ``a``, the parameters at ``w``."""
    return (
        f"({w}expected IS NULL OR {w}expected = {a}.version) AND EXISTS (SELECT 1 FROM "
        f"(VALUES {_transitions()}) AS t (source, target) "
        f"WHERE t.source = {a}.state AND t.target = {w}state)"
    )


def _verified(up: str, a: str, w: str, cast_to: str) -> str:
    """A condition that is true when ``up`` (the row as the update stored it) is exactly the
    intended change of ``a``, and that fails the statement (a bad cast) when it is not."""
    same = " AND ".join(
        [
            f"{up}.appointment_id = {a}.appointment_id",
            f"{up}.date = {a}.date",
            f"{up}.patient = {a}.patient",
            f"{up}.state = {w}state",
            f"{up}.state_time = {w}stamp",
            f"{up}.version = {a}.version + 1",
            f"{up}.updated_at = {w}stamp",
        ]
    )
    return f"CAST(CASE WHEN {same} THEN '1' ELSE '{VERIFY_FAILED}' END AS {cast_to}) = 1"


def _payload(up: str, w: str, quote: str) -> str:
    """The event payload: the Python-built pieces around the stored date, patient, version."""
    date, patient = quote.format(f"{up}.date"), quote.format(f"{up}.patient")
    return (
        f"CONCAT({w}head, {date}, {w}to_patient, {patient}, {w}to_version, {up}.version, {w}tail)"
    )


def postgresql(key: str, short: str, big: str, text: str) -> str:
    """The write as one statement of data-modifying CTEs (run in autocommit: it commits)."""
    types = _types(key, short, big, text)
    params = ", ".join(f"CAST(? AS {types[name]}) AS {name}" for name in WRITE_PARAMS)
    row = ", ".join(_ROW)
    returned = ", ".join(f"appointments.{c}" for c in _ROW)
    before = ", ".join(f"a.{c}" for c in _ROW)
    return (
        f"WITH w AS (SELECT {params}), "
        "prior AS (SELECT result FROM requests "
        "WHERE request_id = (SELECT request_id FROM w)), "
        f"a AS (SELECT {row} FROM appointments "
        "WHERE appointment_id = (SELECT appointment_id FROM w) FOR UPDATE), "
        "up AS (UPDATE appointments SET state = w.state, state_time = w.stamp, "
        "version = appointments.version + 1, updated_at = w.stamp FROM a, w "
        # No version equality here: the row this statement's snapshot shows may be older
        # than the one the lock returned (after waiting); the update then re-reads the
        # newest row (the one locked), which the version check of ``p`` confirms.
        "WHERE appointments.appointment_id = a.appointment_id "
        "AND NOT EXISTS (SELECT 1 FROM prior) "
        f"AND {_checks('a', 'w.')} RETURNING {returned}), "
        f"p AS (SELECT up.date, {_payload('up', 'w.', _PG_QUOTE)} AS payload "
        f"FROM up, a, w WHERE {_verified('up', 'a', 'w.', 'INTEGER')}), "
        "ch AS (INSERT INTO channels (date, epoch, head_seq, min_seq) "
        "SELECT p.date, w.epoch, 1, 1 FROM p, w "
        "ON CONFLICT (date) DO UPDATE SET head_seq = channels.head_seq + 1 "
        "RETURNING epoch, head_seq), "
        f"ev AS (INSERT INTO events ({_EVENT_COLUMNS}) "
        "SELECT p.date, ch.head_seq, CONCAT(p.date, ':', ch.epoch, ':', ch.head_seq), "
        "a.appointment_id, w.request_id, p.payload, w.stamp, w.actor, a.state, a.state_time, "
        "a.updated_at FROM p, ch, a, w), "
        f"rq AS (INSERT INTO requests ({_REQUEST_COLUMNS}) "
        "SELECT w.request_id, p.date, ch.head_seq, "
        "CONCAT(w.result_head, ch.head_seq, w.result_mid, p.payload, '}'), w.stamp "
        "FROM p, ch, w) "
        f"SELECT {before}, (SELECT result FROM prior), ch.epoch, ch.head_seq "
        "FROM w LEFT JOIN a ON 1 = 1 LEFT JOIN ch ON 1 = 1"
    )


#: The PostgreSQL function ``db init`` creates (schema 3): the statement above as its body.
FUNCTION = "synccli_write"


def postgresql_function(key: str, short: str, big: str, text: str) -> tuple[str, str]:
    """(the ``CREATE OR REPLACE FUNCTION`` of ``db init``, the call a write sends).

    The statement of ``postgresql`` as the body of a PL/pgSQL function: PL/pgSQL keeps a
    statement's plan for the session, while a statement sent as is (psqlODBC sends each one
    unnamed) is planned again on every write, which costs more than running it. Its
    parameters are the function's (``$1`` …), in the order of ``WRITE_PARAMS``."""
    statement = postgresql(key, short, big, text)
    for number in range(1, len(WRITE_PARAMS) + 1):
        statement = statement.replace("?", f"${number}", 1)
    types = _types("TEXT", "TEXT", big, "TEXT")
    arguments = ", ".join(types[name] for name in WRITE_PARAMS)
    answer = ", ".join(
        f"o_{name} {kind}"
        for name, kind in zip(
            (*_ROW, "prior", "epoch", "head_seq"),
            (key, key, key, short, short, big, short, text, short, big),
            strict=True,
        )
    )
    create = (
        f"CREATE OR REPLACE FUNCTION {FUNCTION}({arguments}) RETURNS TABLE ({answer}) "
        f"LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY {statement}; END $$"
    )
    casts = ", ".join(f"CAST(? AS {types[name]})" for name in WRITE_PARAMS)
    return create, f"SELECT * FROM {FUNCTION}({casts})"


def mssql(key: str, short: str, big: str, text: str, begin: str) -> tuple[str, str]:
    """The write as one T-SQL batch: (with its own transaction, inside an open one)."""
    types = _types(key, short, big, text)
    declare = ", ".join(f"@{name} {types[name]} = ?" for name in WRITE_PARAMS)
    row_types = (key, key.replace("128", "10"), key, short, short, big, short)
    columns = ", ".join(f"{c} {t}" for c, t in zip(_ROW, row_types, strict=True))
    row = ", ".join(_ROW)
    inserted = ", ".join(f"INSERTED.{c}" for c in _ROW)
    before = ", ".join(f"a.{c}" for c in _ROW)
    body = "; ".join(
        [
            "SET NOCOUNT ON",
            f"DECLARE {declare}",
            f"DECLARE @a TABLE ({columns})",
            f"DECLARE @up TABLE ({columns})",
            f"DECLARE @ch TABLE (epoch {short}, head_seq {big})",
            # The row first, locked: the request id is looked up after the lock is held, so a
            # retry that waited for its own first attempt sees that attempt's record.
            f"INSERT INTO @a ({row}) SELECT {row} FROM appointments WITH (UPDLOCK, ROWLOCK) "
            "WHERE appointment_id = @appointment_id",
            f"DECLARE @prior {text} = (SELECT result FROM requests WHERE request_id = @request_id)",
            "UPDATE appointments SET state = @state, state_time = @stamp, "
            "version = appointments.version + 1, updated_at = @stamp "
            f"OUTPUT {inserted} INTO @up FROM appointments JOIN @a AS a "
            "ON a.appointment_id = appointments.appointment_id "
            f"AND a.version = appointments.version WHERE @prior IS NULL AND {_checks('a', '@')}",
            f"DECLARE @payload {text} = (SELECT "
            f"{_payload('up', '@', _TSQL_QUOTE)} "
            f"FROM @up AS up JOIN @a AS a ON {_verified('up', 'a', '@', 'INT')})",
            "INSERT INTO channels (date, epoch, head_seq, min_seq) SELECT up.date, @epoch, 0, 1 "
            "FROM @up AS up WHERE NOT EXISTS "
            "(SELECT 1 FROM channels WITH (UPDLOCK, HOLDLOCK) WHERE channels.date = up.date)",
            "UPDATE channels SET head_seq = head_seq + 1 "
            "OUTPUT INSERTED.epoch, INSERTED.head_seq INTO @ch "
            "WHERE date = (SELECT date FROM @up)",
            f"INSERT INTO events ({_EVENT_COLUMNS}) "
            "SELECT up.date, ch.head_seq, CONCAT(up.date, ':', ch.epoch, ':', ch.head_seq), "
            "up.appointment_id, @request_id, @payload, @stamp, @actor, a.state, a.state_time, "
            "a.updated_at FROM @up AS up, @ch AS ch, @a AS a",
            f"INSERT INTO requests ({_REQUEST_COLUMNS}) "
            "SELECT @request_id, up.date, ch.head_seq, "
            "CONCAT(@result_head, ch.head_seq, @result_mid, @payload, '}'), @stamp "
            "FROM @up AS up, @ch AS ch",
        ]
    )
    answer = (
        f"SELECT {before}, @prior, ch.epoch, ch.head_seq FROM (SELECT 1 AS one) AS k "
        "LEFT JOIN @a AS a ON 1 = 1 LEFT JOIN @ch AS ch ON 1 = 1"
    )
    return f"{begin}; {body}; COMMIT TRANSACTION; {answer}", f"{body}; {answer}"
