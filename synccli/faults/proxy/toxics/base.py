"""What every toxic shares: the chunk, the queues between stages, the stub a toxic runs in,
and the ``Toxic`` base class (its attributes, their decoding and validation).

As in Shopify/toxiproxy, a toxic is one small class with one method, ``pipe(stub)``: it
reads chunks from ``stub.input`` and writes them to ``stub.output``. The link interrupts a
running toxic by cancelling its task; a toxic that holds a chunk at that moment passes it
on (``stub.holding``), so an interrupt never drops data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from synccli.faults.proxy import gojson


@dataclass(slots=True)
class Chunk:
    """One read from the source socket, stamped with when it was received (``loop.time()``)."""

    data: bytes
    received: float


# ``None`` in a queue means "the source closed": every stage passes it on and stops.
Item = Chunk | None


class ChunkQueue:
    """An unbounded FIFO between two stages; the link bounds the total (see ``Link``).

    Unlike ``asyncio.Queue`` it can give an item back (``unget``) and be drained at once,
    which the link needs when it rewires stages.
    """

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._ready = asyncio.Event()
        self.nbytes = 0
        # Set on every ``get``: the link waits on it for room in its buffers.
        self.on_get: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        """Append ``item``; never blocks."""
        self._items.append(item)
        if item is not None:
            self.nbytes += len(item.data)
        self._ready.set()

    def unget(self, item: Item) -> None:
        """Put ``item`` back at the front, to be read again first."""
        self._items.appendleft(item)
        if item is not None:
            self.nbytes += len(item.data)
        self._ready.set()

    async def get(self) -> Item:
        """The oldest item; waits for one. Cancelling the wait loses nothing."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is not None:
            self.nbytes -= len(item.data)
        if self.on_get is not None:
            self.on_get.set()
        return item

    def drain(self) -> list[Item]:
        """Remove and return every queued item, oldest first."""
        items = list(self._items)
        self._items.clear()
        self.nbytes = 0
        return items


class Stub:
    """The place a toxic runs: its input, its output, its per-link state and dice.

    ``closed`` is set once the toxic has closed the link (sent the end marker on).
    """

    def __init__(
        self, input: ChunkQueue, output: ChunkQueue, rng: random.Random, state: Any = None
    ) -> None:
        self.input = input
        self.output = output
        self.rng = rng
        self.state = state
        self.closed = False
        self.held: list[Chunk] = []

    async def get(self) -> Item:
        """The next chunk, or ``None`` when the source has closed."""
        return await self.input.get()

    def send(self, chunk: Chunk) -> None:
        """Pass ``chunk`` to the next stage (dropped once the link is closed)."""
        if not self.closed:
            self.output.put(chunk)

    def close(self) -> None:
        """Close the link downstream of this toxic: the destination socket gets closed."""
        if not self.closed:
            self.closed = True
            self.output.put(None)

    @contextmanager
    def holding(self, chunk: Chunk) -> Iterator[None]:
        """Mark ``chunk`` as in flight: if the toxic is interrupted now, it is sent on at once."""
        # Not a try/finally: on an interrupt the chunk must stay in ``held`` for the link.
        self.held = [chunk]
        yield
        self.held = []

    def flush_held(self) -> None:
        """Send on what the interrupted toxic held, so nothing is dropped."""
        for chunk in self.held:
            self.send(chunk)
        self.held = []


@dataclass(frozen=True)
class Toxic:
    """Base of every toxic: a dataclass whose fields are its integer attributes.

    ``TYPE`` is the API name, ``GO_NAME`` the Go struct (used in error messages),
    ``GO_TYPES`` the Go type of each attribute.
    """

    TYPE: ClassVar[str]
    GO_NAME: ClassVar[str]
    GO_TYPES: ClassVar[dict[str, str]] = {}

    async def pipe(self, stub: Stub) -> None:
        """Move chunks from ``stub.input`` to ``stub.output`` until the input ends."""
        raise NotImplementedError

    def new_state(self) -> Any:
        """Fresh per-link state, for toxics that keep some (only ``limit_data``)."""
        return None

    def cleanup(self, stub: Stub) -> None:
        """Called when the toxic is removed from a running link."""

    def problem(self) -> str | None:
        """Why these attributes would crash or hang a real Toxiproxy, or ``None`` if fine."""
        return None

    def attributes(self) -> dict[str, int]:
        """The attributes as the API shows them, in declaration order."""
        return {name: getattr(self, name) for name in self.GO_TYPES}

    def merged(self, body: Any) -> Toxic:
        """A copy with the attributes in ``body`` decoded over the current ones.

        Raises ``GoJSONError`` with Go's message for an attribute of the wrong type.
        """
        obj = gojson.expect_object(body, "map[string]interface {}")
        values = self.attributes()
        for key, go_type in self.GO_TYPES.items():
            value = gojson.get_int(obj, key, f"{self.GO_NAME}.attributes.{key}", go_type)
            if value is not None:
                values[key] = value
        return dataclasses.replace(self, **values)


_REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[Toxic]) -> type[Toxic]:
    """Class decorator: make the toxic available under its ``TYPE``."""
    _REGISTRY[cls.TYPE] = cls
    return cls


def toxic_class(type_name: str) -> type[Toxic] | None:
    """The registered toxic class called ``type_name``, or ``None``."""
    return _REGISTRY.get(type_name)


def toxic_types() -> list[str]:
    """Every registered toxic type, sorted."""
    return sorted(_REGISTRY)
