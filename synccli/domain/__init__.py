"""Domain values below both the protocol and the store: appointment rows, committed events,
positions, channels, write requests and the appointment state machine. Nothing here does I/O
or reads a clock."""
