"""``server_kill``: SIGKILL the embedded server at ``at_s``, restart it after ``for_s``."""

from synccli.faults.kinds.base import FaultKind, register

KIND = register(
    FaultKind(
        "server_kill",
        "SIGKILL at `at_s`, restart after `for_s`",
        target="server",
        # The server has one life at a time.
        exclusive=True,
    )
)
