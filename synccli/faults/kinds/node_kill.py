"""``node_kill``: SIGKILL one node of a cluster, restart it after ``for_s``."""

from synccli.faults.kinds.base import Attr, FaultKind, register

#: ``node`` counts the cluster's nodes from 1; 0 lets the run seed choose.
NODE = Attr("node", int, 0, unit="1…N")

KIND = register(
    FaultKind(
        "node_kill",
        "a cluster's node (`--nodes N`; `node` 0: a seeded choice) is SIGKILLed, restarted"
        " after `for_s`; its clients fail over through the balancer",
        target="server",
        attrs=(NODE,),
        # One node down at a time: a second kill while one is down could take them all.
        exclusive=True,
    )
)
