"""The pipeline's pose backends, and BlazePose as one batched stage for every camera.

``mediapipe`` is MediaPipe's own CPU solution in worker processes (:mod:`stgcn_rt.pipeline.pose_pool`);
``blazepose`` is the same networks and graph in PyTorch (:mod:`stgcn_rt.pose`), which on a GPU
pose all cameras in one call per stage. Both take frames with ``submit(camera, image, job)`` and
answer each step with its frames' jobs and a :class:`~stgcn_rt.pipeline.posed.PosedStep`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from stgcn_rt.errors import StgcnError, one_line
from stgcn_rt.pipeline.posed import Answer, PosedStep
from stgcn_rt.window import CHANNELS, JOINTS

if TYPE_CHECKING:
    from stgcn_rt.pose.blazepose import BlazePose

POSE_BACKENDS = ("blazepose", "mediapipe")
PRECISIONS = ("fp32", "fp16")  # bf16 moves landmarks by pixels


def default_pose(device: str) -> str:
    """BlazePose where a GPU classifies; MediaPipe's CPU solution otherwise."""
    return "blazepose" if device.startswith("cuda") else "mediapipe"


def default_precision(device: str) -> str:
    """BlazePose's arithmetic: fp16 on a GPU (0.3 px from fp32, docs/performance.md), fp32 on the CPU."""
    return "fp16" if device.startswith("cuda") else "fp32"


def check_pose(pose: str) -> None:
    """One line for an unknown pose backend."""
    if pose not in POSE_BACKENDS:
        raise StgcnError(f"unknown pose backend {pose}: choose {' or '.join(POSE_BACKENDS)}")


def check_pose_options(pose: str, precision: str | None, models: str | None, precision_option: str,
                       models_option: str) -> None:
    """One line for a pose precision or exported pose models given where they cannot run (the
    options: how the user gave them): MediaPipe's solution takes neither, and exported networks run
    in their files' precision."""
    if pose == "mediapipe":
        for value, option, why in ((precision, precision_option, "runs in its own precision on the CPU"),
                                   (models, models_option, "runs its own networks")):
            if value is not None:
                raise StgcnError(f"{option} is blazepose's: MediaPipe's solution {why}; "
                                 f"leave {option} out or use --pose blazepose")
    if models is not None and precision is not None:
        raise StgcnError(f"the networks in {models_option} run in their files' precision (build an fp16 engine "
                         "with stgcn-rt build --precision fp16): leave the pose precision out")


def person_slots(points: np.ndarray | None, persons: int = 1) -> np.ndarray:
    """Poses (M, 33, 3) as the pipeline's slots, clipped to [0, 1]; None: ``persons`` empty slots."""
    if points is None:
        return np.zeros((persons, JOINTS, CHANNELS), np.float32)
    return np.clip(points, 0.0, 1.0).astype(np.float32)


def blazepose(device: str = "cpu", precision: str = "fp32", persons: int = 1,
              models: str | None = None, graphs: bool | None = None, compiled: bool | None = None) -> BlazePose:
    """BlazePose's networks loaded on ``device`` (cpu, cuda, cuda:N) in ``precision``, with
    ``persons`` slots a camera; ``models``: a folder of exported networks to run instead (ONNX
    Runtime or TensorRT, :mod:`stgcn_rt.pose.runners`), in their own precision; ``graphs``: whether
    its stages run through CUDA graphs on a GPU, ``compiled``: whether those are compiled where
    Triton is installed (None: BlazePose's defaults)."""
    import torch

    from stgcn_rt.pose.blazepose import BlazePose
    from stgcn_rt.runtime.networks import resolve_device

    if precision not in PRECISIONS:
        raise StgcnError(f"unknown pose precision {precision}: choose {' or '.join(PRECISIONS)}")
    return BlazePose(resolve_device(device), torch.float16 if precision == "fp16" else torch.float32,
                     persons=persons, models=models, graphs=graphs, compiled=compiled)


class BlazePoseLanes:
    """BlazePose for every camera in one or more lanes: each lane is a thread (with its own CUDA
    stream on a GPU) that owns a share of the cameras, and each of its steps takes the oldest
    waiting frame of every one of them and poses them together (one detector call for the cameras
    that must detect, one landmark call for all), so that the device sees many cameras at once and
    each camera's frames stay in order. The lanes share the networks. Each step is answered once,
    for all its frames (``answer``, on the lane's thread: it should only hand the answer on). A
    failed step answers its frames without a person, with the error, and those cameras detect
    afresh; the others go on."""

    def __init__(self, answer: Answer, device: str = "cpu", precision: str = "fp32", cameras: int = 1,
                 persons: int = 1, models: str | None = None, lanes: int = 1, graphs: bool | None = None) -> None:
        """``lanes``: threads that pose a share of the cameras each. More than one lets one lane's host
        work (ROIs, filters, launching kernels) run while another's networks keep the GPU busy; at
        256 cameras that host work is about 14 of a step's 44 ms (docs/performance.md). In the
        pipeline on an H100 two were slower than one (their host work shares one interpreter lock),
        so one by default. ``graphs``: see :func:`blazepose`."""
        first = blazepose(device, precision, persons, models, graphs)
        count = max(1, min(lanes, cameras))
        share = -(-cameras // count)
        # stages in CUDA graphs need each lane's stream warmed up (its own graphs); eager ones once
        # (the device's first-call costs are the process's)
        self._lanes = [_Lane(first if i == 0 else first.sharing(), f"blazepose-{i}",
                             share if i == 0 or first.networks.graphs else 0, answer) for i in range(count)]
        self._lane_of: dict[str, _Lane] = {}

    @property
    def pose(self) -> BlazePose:
        """The first lane's BlazePose (all lanes share its networks)."""
        return self._lanes[0].pose

    def post(self, frames: Iterable[tuple[str, np.ndarray, Any]]) -> None:
        """Frames to pose, as (camera, image, job): each camera's in the order posted."""
        shares: dict[_Lane, list[tuple[str, np.ndarray, Any]]] = {}
        for frame in frames:
            lane = self._lane_of.get(frame[0])
            if lane is None:  # cameras dealt to the lanes in turn as they first come
                lane = self._lane_of.setdefault(frame[0], self._lanes[len(self._lane_of) % len(self._lanes)])
            shares.setdefault(lane, []).append(frame)
        for lane, share in shares.items():
            lane.post(share)

    def pin(self, block: np.ndarray) -> bool:
        """Let frames decoded into ``block`` reach the GPU by DMA (see BlazePoseNetworks.pin); undone by close."""
        return self.pose.networks.pin(block)

    def close(self) -> list[Any]:
        """Finish the steps under way; the jobs of the frames not yet posed, dropped."""
        dropped = [job for lane in self._lanes for job in lane.close()]
        self.pose.networks.unpin()
        return dropped


class BlazePoseStage:
    """:class:`BlazePoseLanes` (whose arguments these are) as the pipeline's pose stage in the
    pipeline's process: a frame is answered or, by closing, dropped, never both."""

    def __init__(self, answer: Answer, *args: Any, **options: Any) -> None:
        self._lanes = BlazePoseLanes(answer, *args, **options)

    @property
    def pose(self) -> BlazePose:
        return self._lanes.pose

    def submit(self, camera: str, image: np.ndarray, job: Any) -> None:
        self._lanes.post([(camera, image, job)])

    def flush(self) -> None:
        """Nothing to send: the lanes take each frame as it is submitted."""

    def pin(self, block: np.ndarray) -> bool:
        return self._lanes.pin(block)

    def close(self) -> list[Any]:
        """Finish the steps under way; the jobs of the frames not yet posed."""
        return self._lanes.close()

    def __enter__(self) -> BlazePoseStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Lane:
    """One thread posing its cameras, a step at a time, on its own CUDA stream where there is one."""

    def __init__(self, pose: BlazePose, name: str, warm_up: int, answer: Answer) -> None:
        """Warms ``pose`` up for ``warm_up`` cameras (0: not at all) on the lane's stream: where its
        stages run through CUDA graphs, each stream captures its own (and sizes its frame buffer)."""
        import torch

        self.pose = pose
        self._answer = answer
        device = pose.networks.device
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        if warm_up:
            with self._on_stream():
                pose.warm_up(warm_up)
        self._waiting: dict[str, deque[tuple[np.ndarray, Any]]] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def post(self, frames: list[tuple[str, np.ndarray, Any]]) -> None:
        with self._changed:
            if self._closed:
                raise RuntimeError("the BlazePose stage is closed")
            for camera, image, job in frames:
                self._waiting.setdefault(camera, deque()).append((image, job))
            self._changed.notify()

    def _on_stream(self) -> contextlib.AbstractContextManager:
        import torch

        return torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext()

    def _serve(self) -> None:
        with self._on_stream():
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._closed or any(self._waiting.values()))
                    if self._closed:
                        return
                    due = {camera: queue.popleft() for camera, queue in self._waiting.items() if queue}
                self._step(due)

    def _step(self, due: dict[str, tuple[np.ndarray, Any]]) -> None:
        start = time.perf_counter()
        error = None
        try:
            found = self.pose.process_persons({camera: image for camera, (image, _) in due.items()})
            keypoints = np.clip(np.stack([found[camera] for camera in due]), 0.0, 1.0)
        except Exception as exc:  # reported by the pipeline, once per camera and message
            for camera in due:
                self.pose.forget(camera)
            error = one_line(exc)  # a CUDA error is several lines
        milliseconds = (time.perf_counter() - start) * 1000  # every frame of the step waited for all of it
        step = (PosedStep(keypoints, milliseconds) if error is None
                else PosedStep.failed(len(due), self.pose.persons, error, milliseconds))
        self._answer([job for _, job in due.values()], step)

    def close(self) -> list[Any]:
        """Stop after the step under way; the jobs of the frames left waiting."""
        with self._changed:
            self._closed = True
            dropped = [job for queue in self._waiting.values() for _, job in queue]
            self._waiting.clear()
            self._changed.notify()
        self._thread.join()
        return dropped
