"""BlazePose in a process of its own, reading the decoders' frames where they were decoded.

In the pipeline's process BlazePose's lane shares one interpreter lock with the decoders' router,
the main loop and the scheduler: on an H100 host at 256 cameras that stretched a step (upload,
ROIs, filters, launching) from 30 ms alone to 42 ms there, longer than a camera's 40 ms between
frames (docs/performance.md). Here a spawned process runs :class:`BlazePoseLanes` on the frames
in the decoders' shared block (page-locked in that process), told only where each frame lies
(camera row, slot), and answers each step with its frames' keypoints in one message. The pipeline
sees a pose stage as in its own process: each step answered once; the requests go out together at
:meth:`PoseProcess.flush`, once a loop round, as the decoders' released slots do.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import queue
import signal
import threading
from typing import Any, Tuple

import numpy as np

from stgcn_rt.errors import StgcnError, one_line
from stgcn_rt.pipeline.pose_stage import BlazePoseLanes
from stgcn_rt.pipeline.posed import Answer, PosedStep

#: how long closing waits for the process to finish its step and end before stopping it
CLOSE_TIMEOUT_S = 10.0

Request = Tuple[int, str, int, int]  # token, camera, the frame's row and slot in the block


class PoseProcess:
    """BlazePose (see :class:`~stgcn_rt.pipeline.pose_stage.BlazePoseLanes`, whose arguments
    ``answer`` and ``options`` are) in a spawned process over ``frames``, the view of a shared block that
    ``shared`` hands a process (:func:`stgcn_rt.pipeline.decoders.shared_frames`). Only images that
    are whole slots of ``frames`` (rows of its first two axes) can be submitted. A context manager.

    Starting waits until the process has its networks warmed up; one that cannot start raises its
    reason as one line. If the process dies, the frames waiting for it and every later one are
    answered without a person, with that reason (the pipeline goes on)."""

    def __init__(self, answer: Answer, shared: Any, frames: np.ndarray, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._answer = answer
        self._persons = options.get("persons", 1)
        self._frames = frames
        self._start = frames.ctypes.data
        self._slot_bytes = frames[0, 0].nbytes
        self._slots = frames.shape[0] * frames.shape[1]
        requests, self._requests = context.Pipe(duplex=False)
        self._answers, answers = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, name="blazepose", daemon=True,
                                        args=(shared, frames.shape, options, requests, answers))
        self._process.start()
        requests.close()  # the process's ends: when it ends, this side reads the end of its answers
        answers.close()
        #: whether the process page-locked the frames for the GPU's DMA
        self.pinned: bool = self._started()
        self._lock = threading.Lock()
        self._jobs: dict[int, Any] = {}  # by token, until answered
        self._failure: str | None = None
        self._closing = False
        self._waiting: list[Request] = []
        self._tokens = itertools.count()
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

    def submit(self, camera: str, image: np.ndarray, job: Any) -> None:
        """``camera``'s next frame, ``image`` a slot of the shared frames; sent at the next :meth:`flush`
        (answered at once, without a person, once the process has died)."""
        row, slot = self._place(image)
        with self._lock:
            if self._closing:
                raise RuntimeError("the BlazePose stage is closed")
            failure = self._failure
            if failure is None:
                token = next(self._tokens)
                self._jobs[token] = job
        if failure is not None:
            self._answer([job], PosedStep.failed(1, self._persons, failure))
            return
        self._waiting.append((token, camera, row, slot))

    def _place(self, image: np.ndarray) -> tuple[int, int]:
        """The (row, slot) of the shared frames that ``image`` is."""
        frames = self._frames
        slot, rest = divmod(image.ctypes.data - self._start, self._slot_bytes)
        if (rest or not 0 <= slot < self._slots or image.shape != frames.shape[2:]
                or image.dtype != frames.dtype or not image.flags.c_contiguous):
            raise ValueError("BlazePose's process reads frames in the decoders' shared block: "
                             "this image is not one of its slots")
        return divmod(slot, frames.shape[1])

    def flush(self) -> None:
        """Send the frames submitted since the last flush, in one message."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        try:
            self._requests.send(waiting)
        except OSError:  # the process is gone: its answers' end tells why
            self._receiver.join()

    def _receive(self) -> None:
        """Answer each step with its frames' jobs; when the process ends, answer those still waiting
        without a person, with the reason."""
        jobs = self._jobs
        while True:
            try:
                answers = self._answers.recv()
            except (EOFError, OSError):
                break
            for tokens, step in answers:
                self._answer([jobs.pop(token) for token in tokens], step)
        if self._closing:  # close() waits for the process
            return
        self._process.join(CLOSE_TIMEOUT_S)
        with self._lock:
            self._failure = f"BlazePose's process stopped (exit code {self._process.exitcode})"
            waiting, self._jobs = list(self._jobs.values()), {}
        for job in waiting:  # a step holds one frame of a camera: one each
            self._answer([job], PosedStep.failed(1, self._persons, self._failure))

    def close(self) -> list[Any]:
        """Let the process finish its step and end; the jobs of the frames not yet posed."""
        with self._lock:
            if self._closing:
                return []
            self._closing = True
        try:
            self._requests.send(None)
        except OSError:
            pass
        self._process.join(CLOSE_TIMEOUT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._receiver.join()
        self._requests.close()
        self._answers.close()
        dropped, self._jobs = list(self._jobs.values()), {}
        return dropped

    def __enter__(self) -> PoseProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(shared: Any, shape: tuple[int, ...], options: dict[str, Any], requests: Any, answers: Any) -> None:
    """The process: BlazePoseLanes over the shared frames, until the pipeline sends None or goes."""
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
    try:
        while True:
            try:
                batch = requests.recv()
            except EOFError:  # the pipeline is gone
                break
            if batch is None:
                break
            lanes.post([(camera, frames[row, slot], token) for token, camera, row, slot in batch])
    finally:
        lanes.close()
        outbox.put(None)
        sender.join()


def _answer(outbox: queue.SimpleQueue, tokens: list[int], step: PosedStep) -> None:
    """A step's answer, for the sender (the lane goes on to its next step)."""
    outbox.put((tokens, step))


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
