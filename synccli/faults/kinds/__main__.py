"""Print the fault-kind table of docs/scenarios.md."""

from synccli.faults.kinds import fault_kinds, markdown_table

print(markdown_table(fault_kinds().values()), end="")
