"""Cameras decoded in worker processes, their frames handed over in shared memory.

In the pipeline's own process every decoding thread would share one interpreter lock with the pose
stage, the main loop and the scheduler: at tens of cameras that contention, not the GPU, set the
pace. Here each worker process reads its share of the cameras (a :class:`FrameReader` thread per
camera there), each decoding every frame straight into one of its camera's slots of a shared-memory
block, and sends the pipeline a few numbers. The pipeline sees a :class:`RemoteReader` per camera, with a
:class:`FrameReader`'s ``frames``, ``counters`` and ``done``; a frame's image is a view of its slot,
valid until the pipeline hands the slot back with :meth:`RemoteReader.release` (the slots released
go back to the workers together, at :meth:`DecoderPool.flush`: one message a worker, not one a
frame). Frames arrive in order per camera; the counters follow them, ``finished`` only after a
camera's last frame.

A camera whose slots are all in use waits: a file blocks (no frame lost); a live camera goes on
reading, and each frame that finds no slot free is dropped and counted.

With a ``feed`` the workers send the frames (where each lies) to a process of the pipeline's
instead, BlazePose's (:mod:`stgcn_rt.pipeline.pose_process`), which reads them in the block: the
pipeline's process then routes none of them, only the counters, and each camera's final counters
say how many frames went to the feed.
"""

from __future__ import annotations

import dataclasses
import mmap
import multiprocessing
import operator
import os
import queue
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from stgcn_rt.pipeline.sources import FRAME_SIZE, Frame, FrameReader, SourceCounters, SourceSpec

#: slots per camera: the pipeline's frames in flight at the pose stage (4) and a few decoded ahead
SLOTS = 8
FRAME_SHAPE = (FRAME_SIZE[1], FRAME_SIZE[0], 3)
#: a worker's round (taking back slots, sending what its cameras decoded) lasts at least this long.
#: Each message costs the pipeline's router about as much as routing several frames: on a 16-core
#: H100 host, sent as soon as decoded, a message held about one frame and the router took 39 us of
#: the pipeline's interpreter a frame at 256 cameras. 5 ms gathers several frames of a worker's
#: cameras (e.g. 4 of 32 at 25 fps) for at most 5 ms more latency.
_ROUND_S = 0.005
#: how often the router looks whether a worker has died: a process's exit code is a system call (5.7
#: us; 45 us for 8 workers, at every message more than routing its frames took)
_LOOK_S = 0.1
#: a camera's counters go to the pipeline as they change, but only every so often for frames read
#: alone: a message a frame cost the pipeline's router and loop as much as the frame itself
_COUNTERS_S = 0.5


def default_workers(cameras: int) -> int:
    """Half the cores decode (the rest pose, classify and run the loop), at most one per camera."""
    return max(1, min(cameras, (os.cpu_count() or 2) // 2))


def _decode(cameras: list[tuple[int, SourceSpec]], block: Any, shape: tuple[int, ...], pace: bool,
            free: Any, out: Any, stop: Any, feed: Any = None) -> None:
    """One worker process: read ``cameras`` (index in the block, spec) until each ends or ``stop``;
    the frames to ``out`` with the counters, or to ``feed`` where there is one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pipeline's to handle: it stops the workers
    slots = np.frombuffer(block, np.uint8).reshape(shape)
    returned = threading.Condition()  # notified when the pipeline hands slots back
    readers = {index: _SlotReader(spec, pace, slots[index], returned) for index, spec in cameras}
    dropped = dict.fromkeys(readers, 0)  # live frames decoded while every slot was taken
    handed = dict.fromkeys(readers, 0)  # frames sent on
    sent: dict[int, tuple] = {}  # the counters last sent, and when
    sent_at: dict[int, float] = {}
    for reader in readers.values():
        reader.start()
    while readers and not stop.is_set():
        began = time.monotonic()
        _take_free(free, readers, returned)
        messages: list[tuple] = []
        frames: list[tuple] = messages if feed is None else []
        for index, reader in list(readers.items()):
            while not reader.frames.empty():
                frame = reader.frames.get_nowait()
                if frame.slot is None:  # a live camera's, decoded aside: a slot freed since, or dropped
                    try:
                        frame.slot = reader.idle.popleft()  # its reader takes slots too: no look first
                    except IndexError:
                        dropped[index] += 1
                        continue
                    slots[index, frame.slot] = frame.image
                frames.append((index, frame.slot, frame.index, frame.timestamp))
                handed[index] += 1
            state = _counters(reader, dropped[index], handed[index])
            last = sent.get(index)
            if state != last and (last is None or state[_READ + 1:] != last[_READ + 1:]
                                  or began - sent_at[index] >= _COUNTERS_S):
                sent[index], sent_at[index] = state, began
                messages.append((index, state))
            if state[-2]:  # done
                del readers[index]
        if feed is not None and frames:  # before the counters: a camera's last frames are on their way first
            feed.put(frames)
        if messages:
            out.put(messages)
        time.sleep(max(0.0, began + _ROUND_S - time.monotonic()))
    for reader in readers.values():
        reader.stop()


#: the counters a worker sends, ``finished`` apart (it sends the reader's ``done`` in its place)
_SENT = tuple(field.name for field in dataclasses.fields(SourceCounters) if field.name != "finished")
_sent_values = operator.attrgetter(*_SENT)
_DROPPED, _READ = _SENT.index("dropped"), _SENT.index("read")


def _counters(reader: FrameReader, dropped: int, handed: int) -> tuple:
    """A camera's counters as its worker sends them: the values of :data:`_SENT` (with ``dropped``
    more frames dropped, by the worker), then whether it is finished, only once its last frame is on
    its way, and then the frames it was ``handed`` on in all (None before). A plain tuple: compared
    every round for every camera (a dataclass copy and ``astuple`` there cost 10 us a camera)."""
    values = _sent_values(reader.counters)
    if dropped:
        values = (*values[:_DROPPED], values[_DROPPED] + dropped, *values[_DROPPED + 1:])
    done = reader.done
    return (*values, done, handed if done else None)


def _received(state: tuple) -> SourceCounters:
    """The counters :func:`_counters` sent, as the pipeline's reader of the camera keeps them."""
    return SourceCounters(**dict(zip(_SENT, state)), finished=state[-2])


def _handed(state: tuple) -> int | None:
    """The frames sent on in all that counters :func:`_counters` sent say, once finished."""
    return state[-1]


class _SlotReader(FrameReader):
    """A camera in a worker process, decoding each frame straight into one of its ``slots`` of the
    shared block (no copy, no image of its own a frame), those free in ``idle``. A file waits for a
    slot (``returned`` is notified when slots come back); a live camera with none free decodes into an
    image of its own, which the worker copies into a slot if one has come back, or drops."""

    def __init__(self, spec: SourceSpec, pace: bool, slots: np.ndarray, returned: threading.Condition) -> None:
        super().__init__(spec, queue_size=2, pace=pace)
        self.slots = slots
        self.idle: deque[int] = deque(range(len(slots)))
        self._returned = returned

    def _buffer(self) -> tuple[np.ndarray | None, int | None]:
        with self._returned:  # looked at under the lock, so that a notification cannot come in between
            while not self.idle and not self.spec.live and not self._stop_event.is_set():
                self._returned.wait(0.1)
        try:
            slot = self.idle.popleft()
        except IndexError:  # a live camera's slots all taken, or stopping
            return None, None
        return self.slots[slot], slot

    def _unused(self, slot: int | None) -> None:
        if slot is not None:
            self.idle.append(slot)


def shared_memory(size: int, context: Any) -> tuple[Any, Any]:
    """``size`` bytes that the processes of ``context`` (spawned) share, as (what to hand a process as
    it starts, which it reads as a buffer; the buffer here), freed when the last process lets go of
    them. On Linux an anonymous memory file: it needs no room in /dev/shm, which a container may keep
    small (64 MB in Docker by default), where multiprocessing's own shared memory would fall back to
    a file on disk, whose pages the GPU driver may refuse to page-lock; elsewhere multiprocessing's."""
    if not hasattr(os, "memfd_create"):
        block = context.RawArray("B", size)
        return block, block
    memory = _MemoryFile(size)
    return memory, memory.buffer


def shared_frames(shape: tuple[int, ...], context: Any = None) -> tuple[Any, np.ndarray]:
    """uint8 frames of ``shape`` in :func:`shared_memory` of ``context`` (default: spawned processes):
    what to hand a process, and the frames here."""
    count = int(np.prod(shape))
    shared, memory = shared_memory(max(1, count), context or multiprocessing.get_context("spawn"))
    return shared, np.frombuffer(memory, np.uint8, count).reshape(shape)


class _MemoryFile:
    """An anonymous memory file (memfd), mapped; a process it is handed to maps it too."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._fd = os.memfd_create("stgcn-rt-frames", os.MFD_CLOEXEC)
        self._closer = weakref.finalize(self, os.close, self._fd)
        os.ftruncate(self._fd, size)
        self.buffer = mmap.mmap(self._fd, size)

    def __reduce__(self) -> tuple:
        from multiprocessing import reduction

        return _map_memory_file, (self.size, reduction.DupFd(self._fd))


def _map_memory_file(size: int, fd: Any) -> mmap.mmap:
    """In a worker: the pipeline's memory file, mapped (the mapping keeps it alive)."""
    handle = fd.detach()
    try:
        return mmap.mmap(handle, size)
    finally:
        os.close(handle)


def _take_free(free: Any, readers: dict[int, _SlotReader], returned: threading.Condition) -> None:
    """The slots the pipeline handed back, to their cameras' readers (those still reading)."""
    came = False
    while not free.empty():
        for index, slot in free.get():
            if index in readers:
                readers[index].idle.append(slot)
                came = True
    if came:
        with returned:
            returned.notify_all()


class RemoteReader:
    """One camera decoded in a worker process, seen as a :class:`FrameReader` is."""

    def __init__(self, spec: SourceSpec, index: int, pool: DecoderPool) -> None:
        self.spec, self.index, self._pool = spec, index, pool
        self.frames: queue.SimpleQueue[Frame] = queue.SimpleQueue()
        self.counters = SourceCounters()
        #: the frames its worker sent on in all (to ``frames`` or the pool's feed), once finished
        self.sent: int | None = None

    @property
    def done(self) -> bool:
        return self.counters.finished and self.frames.empty()

    def release(self, frame: Frame) -> None:
        """The pipeline is done with ``frame``: its slot may take the next one (after the pool's next
        :meth:`DecoderPool.flush`)."""
        if frame.slot is not None:
            self._pool.release(self.index, frame.slot)


class DecoderPool:
    """``workers`` processes decoding ``specs`` (camera k in worker k % workers) into one shared
    block of ``slots`` frames per camera; ``readers`` by camera name. A context manager."""

    def __init__(self, specs: list[SourceSpec], workers: int | None = None, pace: bool = False,
                 slots: int = SLOTS, notify: Callable[[str], None] | None = None, feed: bool = False) -> None:
        """``notify``: called with a camera's name (on the routing thread) after each frame or change
        of counters handed to its reader, so that a consumer can wait for news instead of polling.
        ``feed``: the workers send the frames to :attr:`feed`, not to the readers."""
        self.workers = max(1, min(len(specs), workers or default_workers(len(specs))))
        shape = (len(specs), slots, *FRAME_SHAPE)
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        #: the block as it is handed to a process that reads the frames (a pose stage of its own), and
        #: every slot (what a pose stage may pin)
        self.shared, self.frames = shared_frames(shape, context)
        self.readers = {spec.name: RemoteReader(spec, index, self) for index, spec in enumerate(specs)}
        # written as they are put (no feeder thread, which could write to the pipe of a worker gone)
        self._free = [context.SimpleQueue() for _ in range(self.workers)]
        self._released: list[list[tuple[int, int]]] = [[] for _ in range(self.workers)]
        self._out = context.Queue()
        #: where the workers send lists of frames as (camera index, slot, frame index, timestamp)
        #: when asked to, for a process of the pipeline's to read; None: to the readers
        self.feed = context.Queue() if feed else None
        self._stop = context.Event()
        self._processes = [
            context.Process(target=_decode, name=f"decoder-{w}", daemon=True,
                            args=([(k, s) for k, s in enumerate(specs) if k % self.workers == w],
                                  self.shared, shape, pace, self._free[w], self._out, self._stop, self.feed))
            for w in range(self.workers)]
        self._by_index = list(self.readers.values())
        self._notify = notify or (lambda name: None)
        self._dispatcher = threading.Thread(target=self._dispatch, name="decoders", daemon=True)

    def start(self) -> DecoderPool:
        for process in self._processes:
            process.start()
        self._dispatcher.start()
        return self

    def frame(self, index: int, slot: int, number: int, timestamp: float) -> Frame:
        """Camera ``index``'s frame ``number`` as its worker sent it (to the readers or the feed): a
        view of its ``slot``, valid until released."""
        return Frame(number, timestamp, self.frames[index, slot], slot)

    def release(self, index: int, slot: int) -> None:
        """Camera ``index``'s ``slot`` is free again, from the next :meth:`flush` on."""
        self._released[index % self.workers].append((index, slot))

    def flush(self) -> None:
        """Hand the slots released since the last flush back to their workers."""
        for free, released in zip(self._free, self._released):
            if released:
                free.put(list(released))
                released.clear()

    def _dispatch(self) -> None:
        """Route the workers' messages to the cameras. A worker that dies fails its unfinished
        cameras (what it had not sent is lost with it); the others go on."""
        failed: set[int] = set()  # the workers whose cameras were failed
        looked = 0.0  # when the workers' exit codes were last looked at
        while not self._stop.is_set():
            try:
                messages = self._out.get(timeout=_LOOK_S)
            except queue.Empty:
                messages = []
            for message in messages:
                if message[0] % self.workers in failed:
                    continue
                reader = self._by_index[message[0]]
                if len(message) == 4:
                    _, slot, index, timestamp = message
                    reader.frames.put(self.frame(message[0], slot, index, timestamp))
                else:
                    reader.counters, reader.sent = _received(message[1]), _handed(message[1])
                self._notify(reader.spec.name)
            if self._stop.is_set():  # closing: the workers end because they were told to
                return
            if messages and time.monotonic() - looked < _LOOK_S:
                continue
            looked = time.monotonic()
            for w, process in enumerate(self._processes):
                if w not in failed and process.exitcode not in (None, 0):
                    failed.add(w)
                    self._fail_cameras(w, f"its decoding process stopped (exit code {process.exitcode})")
            if not messages and not any(process.is_alive() for process in self._processes):
                for w in range(self.workers):  # ended without saying so: should not happen, must not hang
                    self._fail_cameras(w, "its decoding process ended early")
                return

    def _fail_cameras(self, worker: int, error: str) -> None:
        if self._stop.is_set():  # a worker that ended as close() told it to
            return
        for reader in self._by_index[worker::self.workers]:
            if not reader.counters.finished:
                reader.counters = dataclasses.replace(reader.counters, finished=True,
                                                      error=reader.counters.error or error)
                self._notify(reader.spec.name)

    def close(self) -> None:
        """Stop the workers; the frames still held stay readable until they are dropped."""
        if self._stop.is_set():
            return
        self._stop.set()
        for process in self._processes:
            if process.pid is not None:
                process.join(timeout=5)
                if process.is_alive():
                    process.terminate()
        if self._dispatcher.is_alive():
            self._dispatcher.join()
        for queue_ in (self._out, self.feed):
            if queue_ is not None:
                queue_.cancel_join_thread()
                queue_.close()

    def __enter__(self) -> DecoderPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
