"""BlazePose in a process of its own, fed by the decoders, reading their frames where they were decoded.

In the pipeline's process BlazePose's lane shares one interpreter lock with the decoders' router,
the main loop and the scheduler: on an H100 host at 256 cameras that stretched a step (upload,
ROIs, filters, launching) from 30 ms alone to 42 ms there, longer than a camera's 40 ms between
frames (docs/performance.md). Here a spawned process runs :class:`BlazePoseLanes` on the frames
in the decoders' shared block (page-locked in that process). The decoding processes tell it where
each frame lies (:attr:`stgcn_rt.pipeline.decoders.DecoderPool.feed`), so no frame passes through
the pipeline's interpreter on its way to pose: at hundreds of cameras that interpreter, handing
every frame on, was what ran out first (docs/performance.md). Each step comes back to the pipeline
in one message, its frames as the decoders told them: (camera row, slot, frame index, timestamp).
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import signal
import threading
from typing import Any, Callable, List, Tuple

import numpy as np

from stgcn_rt.errors import StgcnError, one_line
from stgcn_rt.pipeline.pose_stage import BlazePoseLanes
from stgcn_rt.pipeline.posed import PosedStep

#: how long closing waits for the process to finish its step and end before stopping it
CLOSE_TIMEOUT_S = 10.0

#: a frame as the decoders feed it: its camera's row and its slot in the block, its index and timestamp
Fed = Tuple[int, int, int, float]
FedAnswer = Callable[[List[Fed], PosedStep], None]


class PoseProcess:
    """BlazePose (see :class:`~stgcn_rt.pipeline.pose_stage.BlazePoseLanes`, whose arguments
    ``answer`` and ``options`` are) in a spawned process over ``frames``, the view of a shared block that
    ``shared`` hands a process (:func:`stgcn_rt.pipeline.decoders.shared_frames`), posing the frames
    that come in ``feed`` (lists of :data:`Fed`, each camera's in order; a camera is its row) and
    answering each step with them. A context manager.

    Starting waits until the process has its networks warmed up; one that cannot start raises its
    reason as one line. If the process dies, :attr:`failure` says so (its frames are lost)."""

    def __init__(self, answer: FedAnswer, shared: Any, frames: np.ndarray, feed: Any, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._answer = answer
        control, self._control = context.Pipe(duplex=False)  # None there asks the process to end
        self._answers, answers = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, name="blazepose", daemon=True,
                                        args=(shared, frames.shape, options, control, answers, feed))
        self._process.start()
        control.close()  # the process's ends: when it ends, this side reads the end of its answers
        answers.close()
        #: whether the process page-locked the frames for the GPU's DMA
        self.pinned: bool = self._started()
        #: why the process poses no more frames (it died), or None
        self.failure: str | None = None
        self._closing = False
        self._receiver = threading.Thread(target=self._receive, name="blazepose-answers", daemon=True)
        self._receiver.start()

    def _started(self) -> bool:
        try:
            kind, value = self._answers.recv()
        except EOFError:
            self._process.join()
            raise StgcnError(f"BlazePose's process stopped while starting (exit code {self._process.exitcode})"
                             ) from None
        if kind == "failed":
            self._process.join()
            raise StgcnError(value)
        return bool(value)

    def _receive(self) -> None:
        """Hand each step on; when the process ends unasked, say why."""
        while True:
            try:
                answers = self._answers.recv()
            except (EOFError, OSError):
                break
            for fed, step in answers:
                self._answer(fed, step)
        if self._closing:  # close() waits for the process
            return
        self._process.join(CLOSE_TIMEOUT_S)
        self.failure = f"BlazePose's process stopped (exit code {self._process.exitcode})"

    def close(self) -> None:
        """Let the process finish its step and end (the frames fed after it are not posed)."""
        if self._closing:
            return
        self._closing = True
        try:
            self._control.send(None)
        except OSError:
            pass
        self._process.join(CLOSE_TIMEOUT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._receiver.join()
        self._control.close()
        self._answers.close()

    def __enter__(self) -> PoseProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(shared: Any, shape: tuple[int, ...], options: dict[str, Any], control: Any, answers: Any,
           feed: Any) -> None:
    """The process: BlazePoseLanes over the shared frames fed, until the pipeline sends None or goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pipeline's to handle: it closes this
    frames = np.frombuffer(shared, np.uint8).reshape(shape)
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    try:
        lanes = BlazePoseLanes(functools.partial(_answer, outbox), **options)
        pinned = lanes.pin(frames)
    except Exception as exc:  # told to the pipeline as its one line
        reason = str(exc) if isinstance(exc, StgcnError) else one_line(exc)
        answers.send(("failed", reason))
        return
    answers.send(("ready", pinned))
    sender = threading.Thread(target=_send, args=(outbox, answers), name="answers", daemon=True)
    sender.start()
    threading.Thread(target=_post_fed, args=(feed, lanes, frames), name="feed", daemon=True).start()
    try:
        while control.recv() is not None:
            pass
    except EOFError:  # the pipeline is gone
        pass
    finally:
        lanes.close()
        outbox.put(None)
        sender.join()


def _post_fed(feed: Any, lanes: BlazePoseLanes, frames: np.ndarray) -> None:
    """Hand the lanes the frames the decoders feed, as they come, until the lanes close."""
    while True:
        try:
            batch = feed.get()
            lanes.post([(row, frames[row, slot], (row, slot, index, timestamp))
                        for row, slot, index, timestamp in batch])
        except (EOFError, OSError, RuntimeError):  # the feed or the lanes closed
            return


def _answer(outbox: queue.SimpleQueue, fed: list[Fed], step: PosedStep) -> None:
    """A step's answer, for the sender (the lane goes on to its next step)."""
    outbox.put((fed, step))


def _send(outbox: queue.SimpleQueue, answers: Any) -> None:
    """Send the steps' answers as they come, those ready together in one message, until None."""
    done = False
    while not done:
        batch = [outbox.get()]
        while True:
            try:
                batch.append(outbox.get_nowait())
            except queue.Empty:
                break
        done = any(answer is None for answer in batch)
        batch = [answer for answer in batch if answer is not None]
        if batch:
            try:
                answers.send(batch)
            except OSError:  # the pipeline is gone
                return
