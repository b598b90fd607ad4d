"""One direction of one proxied connection: socket reader → toxic stages → socket writer.

Like Toxiproxy's ``ToxicLink``: stage 0 is a hidden ``noop``, then one stage per toxic of
the stream in creation order. Each stage is a task running ``toxic.pipe(stub)``; its stub
reads the previous stage's queue and writes the next one's. Adding, updating or removing
a toxic interrupts (cancels) the stages it touches, rewires the queues and restarts them;
every (re)start rolls the toxicity dice again, so the roll is per link, not per chunk.

Stage 0 has no task of its own: the reader does its work (passing chunks on), which saves
a task hop per chunk; rewiring its output is atomic because the reader puts without
awaiting. With no toxic at all and nothing queued, the reader writes to the destination
itself (a second hop saved: a proxy carrying a thousand clients spends most of its time on
these hops); the order holds because the writer writes each chunk as soon as it gets it.

The queues are unbounded, but the reader stops reading while the link holds
``MAX_CHUNKS`` chunks or ``MAX_BYTES`` bytes, so a slow link pushes back on the sender
through TCP just as the real one's channel buffers do.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from dataclasses import dataclass

from synccli.faults.proxy.envelope import ToxicEnvelope
from synccli.faults.proxy.toxics import Chunk, ChunkQueue, Stub, Toxic
from synccli.faults.proxy.toxics.noop import NoopToxic
from synccli.faults.proxy.toxics.reset_peer import ResetPeerToxic

READ_SIZE = 32 * 1024
MAX_CHUNKS = 1024
MAX_BYTES = 256 * 1024
NOOP = NoopToxic()


@dataclass
class _Stage:
    stub: Stub
    envelope: ToxicEnvelope | None
    task: asyncio.Task[None] | None = None


def set_reset_on_close(writer: asyncio.StreamWriter) -> None:
    """``SO_LINGER`` 0: closing the socket sends a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _run(toxic: Toxic, stub: Stub) -> None:
    try:
        await toxic.pipe(stub)
    except asyncio.CancelledError:
        stub.flush_held()
        raise


class Link:
    """Moves bytes from ``source`` to ``dest`` through the toxics of one stream."""

    def __init__(
        self,
        chain: list[ToxicEnvelope],
        rng: random.Random,
        source: asyncio.StreamReader,
        source_writer: asyncio.StreamWriter,
        dest: asyncio.StreamWriter,
    ) -> None:
        self._rng = rng
        self._source = source
        self._source_writer = source_writer
        self._dest = dest
        self._room = asyncio.Event()
        self._tail = self._queue()
        self._stages: list[_Stage] = []
        queue = self._queue()
        for envelope in [None, *chain]:
            output = self._queue() if len(self._stages) < len(chain) else self._tail
            state = envelope.toxic.new_state() if envelope is not None else None
            self._stages.append(_Stage(Stub(queue, output, rng, state), envelope))
            queue = output
        self._tasks: list[asyncio.Task[None]] = []
        self.finished = False
        self.done = asyncio.Event()

    def _queue(self) -> ChunkQueue:
        queue = ChunkQueue()
        queue.on_get = self._room
        return queue

    def start(self) -> None:
        """Start reading, the stages and writing."""
        if any(isinstance(s.envelope.toxic, ResetPeerToxic) for s in self._stages if s.envelope):
            set_reset_on_close(self._source_writer)
            set_reset_on_close(self._dest)
        for index in range(len(self._stages)):
            self._start_stage(index)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._write())]

    def _start_stage(self, index: int) -> None:
        if index == 0:
            return  # the hidden noop runs inside the reader
        if self.finished:
            # The link ended (or was cancelled) while a toxic change awaited the old stage:
            # a stage started now would never be cancelled.
            return
        stage = self._stages[index]
        toxic: Toxic = NOOP
        if stage.envelope is not None and self._rng.random() < stage.envelope.toxicity:
            toxic = stage.envelope.toxic
        stage.task = asyncio.get_running_loop().create_task(_run(toxic, stage.stub))

    async def _interrupt(self, index: int) -> bool:
        """Stop stage ``index``; ``False`` if it had already ended (closed the link)."""
        if index == 0:
            return True
        task = self._stages[index].task
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.wait([task])
        return True

    async def add(self, envelope: ToxicEnvelope) -> None:
        """Append a toxic at the end of the chain of this running link."""
        last = len(self._stages) - 1
        queue = self._queue()
        stage = _Stage(Stub(queue, self._tail, self._rng, envelope.toxic.new_state()), envelope)
        self._stages.append(stage)
        if await self._interrupt(last):
            self._stages[last].stub.output = queue
            self._start_stage(last + 1)
            self._start_stage(last)
        else:
            stage.stub.output = queue

    async def update(self, index: int, envelope: ToxicEnvelope) -> None:
        """Restart the stage of chain position ``index`` (0-based) with the new attributes."""
        stage = self._stages[index + 1]
        stage.envelope = envelope
        if await self._interrupt(index + 1):
            self._start_stage(index + 1)

    async def remove(self, index: int) -> None:
        """Take the toxic at chain position ``index`` (0-based) out of this link."""
        position = index + 1
        stage = self._stages[position]
        if await self._interrupt(position) and stage.envelope is not None:
            stage.envelope.toxic.cleanup(stage.stub)
        previous = self._stages[position - 1]
        restart = await self._interrupt(position - 1)
        # What the removed toxic had not read yet goes on, behind what it already sent.
        for item in stage.stub.input.drain():
            stage.stub.output.put(item)
        previous.stub.output = stage.stub.output
        del self._stages[position]
        if restart:
            self._start_stage(position - 1)

    def _full(self) -> bool:
        queues = [stage.stub.input for stage in self._stages] + [self._tail]
        return (
            sum(len(q) for q in queues) >= MAX_CHUNKS or sum(q.nbytes for q in queues) >= MAX_BYTES
        )

    async def _read(self) -> None:
        noop = self._stages[0].stub
        loop = asyncio.get_running_loop()
        try:
            while not self.finished:
                while self._full() and not self.finished:
                    self._room.clear()
                    await self._room.wait()
                data = await self._source.read(READ_SIZE)
                if not data:
                    break
                if len(self._stages) == 1 and not self._tail:
                    self._dest.write(data)
                    await self._dest.drain()
                    continue
                noop.output.put(Chunk(data, loop.time()))
        except OSError:
            pass
        noop.output.put(None)

    async def _write(self) -> None:
        try:
            while (chunk := await self._tail.get()) is not None:
                self._dest.write(chunk.data)
                await self._dest.drain()
        except OSError:
            pass
        finally:
            self.finished = True
            self._room.set()
            # A full close, as Go's dest.Close(): the other link's reader then sees EOF.
            self._dest.close()
            self.done.set()

    def cancel(self) -> None:
        """Stop every task of the link now (the sockets are the connection's business)."""
        self.finished = True
        for task in self._tasks:
            task.cancel()
        for stage in self._stages:
            if stage.task is not None:
                stage.task.cancel()
        # A writer cancelled before it first ran never reaches its ``finally``.
        self.done.set()

    async def stopped(self) -> None:
        """Wait until every task of the link has ended (after ``cancel``), so none is left
        pending when the loop closes."""
        tasks = [*self._tasks, *(s.task for s in self._stages if s.task is not None)]
        await asyncio.gather(*tasks, return_exceptions=True)
