"""The appointment state machine, as data.

Rules:

* A state may move only to the states listed for it in ``TRANSITIONS``.
* Moving to the state it already has is not a transition (``invalid_transition``).
* Every state has a way back (undo steps), so a long simulation never runs out of valid writes.
"""

from __future__ import annotations

from typing import Final

from synccli.errors import WriteRejected

SCHEDULED: Final = "Scheduled"
PRESENT: Final = "Present"
SEATED: Final = "Seated"
DISMISSED: Final = "Dismissed"
NO_SHOW: Final = "NoShow"
CANCELLED: Final = "Cancelled"

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    SCHEDULED: frozenset({PRESENT, CANCELLED, NO_SHOW}),
    PRESENT: frozenset({SEATED, SCHEDULED}),
    SEATED: frozenset({DISMISSED, PRESENT}),
    DISMISSED: frozenset({SEATED}),
    NO_SHOW: frozenset({PRESENT, SCHEDULED}),
    CANCELLED: frozenset({SCHEDULED}),
}

STATES: Final[tuple[str, ...]] = tuple(TRANSITIONS)


def check_state(state: str) -> None:
    """Raise ``invalid_state`` unless ``state`` is one of ``STATES``."""
    if state not in TRANSITIONS:
        raise WriteRejected("invalid_state", f"unknown state {state!r}; one of {', '.join(STATES)}")


def check_transition(current: str, target: str) -> None:
    """Raise ``invalid_state``/``invalid_transition`` unless ``current -> target`` is allowed."""
    check_state(target)
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "nothing"
        raise WriteRejected(
            "invalid_transition", f"cannot move from {current} to {target}; allowed: {allowed}"
        )


def allowed_targets(current: str) -> tuple[str, ...]:
    """The states ``current`` may move to, in a stable order."""
    return tuple(sorted(TRANSITIONS.get(current, frozenset())))
