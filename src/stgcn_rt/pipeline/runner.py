"""The multi-camera pipeline: sources -> pose (MediaPipe in worker processes, or BlazePose batched
across cameras) -> windows -> batching scheduler -> events. One bad camera or frame never stops the
others; every event is on disk when reported.

The events file gets a ``run`` line first, then per camera its predictions, alerts, camera events
(failed, connecting, reconnecting, reconnected) and errors (pose, classification), each with the run id.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from stgcn_rt import __version__
from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.pipeline.annotate import MP4V_NOTE, VideoOutput, draw
from stgcn_rt.pipeline.decoders import DecoderPool, RemoteReader
from stgcn_rt.pipeline.events import AlertPolicy, EventLog, new_run_id, now_iso
from stgcn_rt.pipeline.pose_pool import PosePool
from stgcn_rt.pipeline.pose_process import Fed, PoseProcess
from stgcn_rt.pipeline.pose_stage import (
    BlazePoseStage,
    check_pose,
    check_pose_options,
    default_pose,
    default_precision,
)
from stgcn_rt.pipeline.posed import PosedStep, PoseStage
from stgcn_rt.pipeline.sources import Frame, FrameReader, SourceSpec, parse_sources
from stgcn_rt.runtime.classifier import Classifier, fast_torch_options, is_checkpoint
from stgcn_rt.runtime.predict import SkeletonWindow
from stgcn_rt.runtime.scheduler import BatchScheduler, WindowDropped, WindowResult
from stgcn_rt.urls import mask_url
from stgcn_rt.window import CHANNELS, FRAMES, JOINTS

log = logging.getLogger(__name__)


#: a camera whose windows wait this long in the classification queue falls behind real time
BEHIND_QUEUE_S = 1.0
#: ... as does one whose frames come through slower than this share of its source's frame rate
BEHIND_RATE = 0.9
#: the last timings a camera keeps for its status line
RECENT_TIMINGS = 50
#: the loop waits at most this long for news, so that status lines come on time
STATUS_WAKE_S = 0.1
#: while BlazePose runs on a GPU in the pipeline's process (not in one of its own), how long a thread
#: holding the interpreter lock keeps it from another that waits for it (Python's default: 5 ms).
#: BlazePose's lane lets go of the lock at every GPU call and wait, a step's worth of times, and with
#: the loop busy handling frames it would otherwise wait up to that long to get it back each time. On
#: an H100 host, 192 cameras through CUDA graphs: p99 488 ms at 0.5 ms, 124 ms at 0.1
#: (docs/performance.md, session 31)
POSE_SWITCH_INTERVAL_S = 0.0001
BEHIND_ADVICE = ("fewer cameras, a larger --stride, an INT8 model (stgcn-rt quantize) or the GPU (--device cuda) "
                 "would let it keep up")


@dataclass
class PipelineConfig:
    sources: list[str]
    events: Path
    persons: int | None = None  # None: the model's own M (1 for a checkpoint)
    stride: int = 5
    min_frames: int | None = None  # frames before a camera's first window; None: a full window
    save_video: Path | None = None
    save_clips: Path | None = None  # a clip of the window's frames for every alert raised
    display: bool = False
    threshold: float = 0.8
    min_windows: int = 3
    alert_class: str | None = None  # default: the last class (e.g. "shoplifting")
    pose: str | None = None  # blazepose or mediapipe; None: blazepose on a GPU, mediapipe otherwise
    pose_device: str = "cpu"  # where blazepose runs
    pose_precision: str | None = None  # blazepose's: None, fp16 on a GPU, fp32 on the CPU
    pose_models: str | None = None  # blazepose's exported networks (a folder), run instead of PyTorch's
    pose_lanes: int = 1  # blazepose's threads (BlazePoseStage)
    pose_graphs: bool | None = None  # blazepose's stages through CUDA graphs (None: BlazePose's default)
    pose_process: bool | None = None  # blazepose in a process of its own (None: where it runs on a GPU)
    pose_workers: int | None = None  # mediapipe's worker processes; None: one per core
    decode_workers: int | None = None  # processes decoding the cameras; None: half the cores, at most one per camera
    detector: str = "hog"  # multi-person only: hog (offline, built into OpenCV) or yolo:WEIGHTS
    pace: bool = False
    max_batch: int = 32
    max_wait_ms: float = 10.0
    status_interval: float = 2.0
    max_inflight: int = 4  # frames per camera at a pose stage the loop feeds (BlazePose's process: slots bound them)
    command: str | None = None  # the command line, for the events file's run line (URLs masked)


@contextlib.contextmanager
def _switch_interval(seconds: float | None) -> Iterator[None]:
    """The interpreter's switch interval set to ``seconds`` (None: left as it is) for the block."""
    before = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class Timings:
    """One camera's milliseconds of one kind: the mean of them all and of the last few (a pipeline
    runs for weeks, so every value is not kept)."""

    def __init__(self, values: Iterable[float] = ()) -> None:
        self.recent: deque[float] = deque(maxlen=RECENT_TIMINGS)
        self.total, self.count = 0.0, 0
        for value in values:
            self.add(value)

    def add(self, value: float) -> None:
        self.recent.append(value)
        self.total += value
        self.count += 1

    def mean(self, last: int | None = None) -> float:
        """The mean of every value, or of the ``last`` few (at most RECENT_TIMINGS); 0.0 before any."""
        if last is None:
            return self.total / self.count if self.count else 0.0
        values = list(self.recent)[-last:]
        return sum(values) / len(values) if values else 0.0


@dataclass
class CameraState:
    spec: SourceSpec
    reader: RemoteReader | FrameReader
    ring: SkeletonWindow
    submitted: int = 0  # frames handed to a pose stage by the loop (none where the decoders feed BlazePose's process)
    video: VideoOutput | None = None
    frames_done: int = 0
    persons_seen: int = 0
    windows: int = 0
    predictions: int = 0
    alerts: int = 0
    dropped_windows: int = 0
    pose_ms: Timings = field(default_factory=Timings)
    pose_batch: Timings = field(default_factory=Timings)  # frames posed together with each of its frames
    queue_ms: Timings = field(default_factory=Timings)  # a window's wait in the classification queue
    model_ms: Timings = field(default_factory=Timings)  # its batch's run
    errors: list[str] = field(default_factory=list)
    label: tuple[str, float] | None = None
    alert_active: bool = False
    recent: deque = field(default_factory=deque)  # (frame index, annotated image), for alert clips
    clip_requests: deque = field(default_factory=deque)  # alert events waiting for their clip
    reconnects: int = 0  # the reader's reconnect attempts already reported as events
    reconnect_read: int | None = None  # frames read when the last reconnect began, until frames come again
    frames_at_status: int = 0  # frames done at the last status line
    behind: bool = False  # warned that it falls behind real time

    @property
    def finished(self) -> bool:
        """Its source ended and each frame it gave was posed and handled (those the loop handed to a
        pose stage, and those its decoder sent BlazePose's process, once it says how many)."""
        reader = self.reader
        return reader.done and self.frames_done >= max(self.submitted, reader.sent or 0)

    def status(self, elapsed: float) -> str:
        """This camera's part of the periodic status line, ``elapsed`` seconds into the run."""
        c = self.reader.counters
        if c.error is not None:
            return f"{self.spec.name}: failed"
        if c.read == 0 and c.reconnects:
            return f"{self.spec.name}: connecting (retry {c.reconnects})"
        if self.finished:
            return f"{self.spec.name}: done, {self.frames_done} frames"
        pose_ms, queue_ms, model_ms = self.pose_ms.mean(50), self.queue_ms.mean(20), self.model_ms.mean(20)
        return (f"{self.spec.name}: {self.frames_done / elapsed:.1f} fps, pose {pose_ms:.0f} ms, "
                f"queue {queue_ms:,.0f} ms, model {model_ms:,.0f} ms, drops {c.dropped + self.dropped_windows}")

    def falling_behind(self, rate: float) -> str | None:
        """Why this camera falls behind real time, with frames coming through at ``rate`` a second
        lately; None while it keeps up."""
        fps = self.reader.counters.fps
        queue_s = self.queue_ms.mean(5) / 1000
        if queue_s > BEHIND_QUEUE_S:
            return f"its windows wait {queue_s:.1f} s for the model"
        if fps and rate < BEHIND_RATE * fps:
            return f"its frames come through at {rate:.1f} fps, the source gives {fps:.0f}"
        return None


@dataclass
class CameraSummary:
    camera: str
    source: str
    frames: int
    frames_dropped: int
    frames_failed: int
    person_rate: float
    windows: int
    predictions: int
    windows_dropped: int
    alerts: int  # alerts raised
    pose_ms: float
    pose_batch: float  # frames posed together with each of its frames, on average (BlazePose's steps)
    queue_ms: float
    model_ms: float
    errors: list[str]


class Pipeline:
    """``model``: what ``classifier`` was loaded from (a file or an address), for the run line."""

    def __init__(self, config: PipelineConfig, classifier: Classifier, status: TextIO | None = None,
                 model: str | None = None) -> None:
        model_persons = classifier.input_shape[4]
        #: persons per window: the config's, else the model's own
        self.persons: int = config.persons or model_persons or 1
        if model_persons not in (None, self.persons):
            raise StgcnError(
                f"the model takes M={model_persons} persons per window but --persons is {self.persons}: leave "
                f"--persons out (the model's M), export one for {self.persons} (stgcn-rt export CKPT --persons "
                f"{self.persons}) or give the .pt checkpoint, which takes any M")
        if config.stride < 1:
            raise StgcnError(f"--stride must be 1 or more, got {config.stride}")
        self.seq_len = classifier.input_shape[2] or FRAMES
        #: frames before a camera's first window: the config's, else a whole window
        self.min_frames: int = config.min_frames or self.seq_len
        if not 1 <= self.min_frames <= self.seq_len:
            raise StgcnError(f"--min-frames must be 1 to the model's window of {self.seq_len} frames, "
                             f"got {self.min_frames}")
        self.pose = config.pose or default_pose(config.pose_device)
        check_pose(self.pose)
        check_pose_options(self.pose, config.pose_precision, config.pose_models, "--pose-precision", "--pose-models")
        self.pose_precision = (config.pose_precision or default_precision(config.pose_device)
                               if self.pose == "blazepose" and config.pose_models is None else None)
        self.config = config
        self.classifier = classifier
        self.model = model
        self.status = status
        alert_name = config.alert_class or classifier.classes[-1]
        if alert_name not in classifier.classes:
            raise StgcnError(f"--alert-class {alert_name} is not one of the model's classes "
                             f"({', '.join(classifier.classes)})")
        self.alert_index = classifier.classes.index(alert_name)
        self.policy = AlertPolicy(self.alert_index, config.threshold, config.min_windows)
        self.cameras: dict[str, CameraState] = {}
        #: news for the loop: names of cameras with news of their decoders, posed steps (see _loop)
        self._inbox: queue.SimpleQueue[str | tuple[list[tuple[CameraState, Frame]], PosedStep]] = queue.SimpleQueue()
        self._rows: list[CameraState] = []  # the cameras by their row in the decoders' block
        self._noted_mp4v = False  # said that annotated video falls back to mp4v

    # -- results (called on the scheduler's worker thread) ---------------------------------
    def _on_result(self, result: WindowResult) -> None:
        name = str(result.camera)  # the pipeline submits its cameras by name
        camera = self.cameras[name]
        probs = result.probabilities
        index = int(np.argmax(probs))
        camera.predictions += 1
        camera.queue_ms.add(result.queue_s * 1000)
        camera.model_ms.add(result.run_s * 1000)
        camera.label = (self.classifier.classes[index], float(probs[index]))
        meta = result.meta
        event = {
            "kind": "prediction", "time": now_iso(), "camera": result.camera,
            "frames": meta["frames"], "persons": meta["persons"],
            "class": self.classifier.classes[index],
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.classifier.classes, probs)},
            "latency_ms": round(result.latency_s * 1000, 2), "queue_ms": round(result.queue_s * 1000, 2),
            "frame_to_pose_ms": round((meta["posed"] - meta["read"]) * 1000, 2),
            "frame_to_event_ms": round((time.time() - meta["read"]) * 1000, 2), "batch": result.batch_size,
        }
        self._emit(event)
        change = self.policy.update(name, float(probs[self.alert_index]))
        if change is not None:
            camera.alert_active = change == "raised"
            camera.alerts += change == "raised"
            alert = {"kind": "alert", "state": change, "time": now_iso(), "camera": result.camera,
                     "class": self.classifier.classes[self.alert_index],
                     "probability": round(float(probs[self.alert_index]), 6),
                     "frames": meta["frames"], "threshold": self.policy.threshold,
                     "min_windows": self.policy.min_windows}
            if change == "raised" and self.config.save_clips is not None:
                alert["clip"] = str(self.config.save_clips / f"{result.camera}-{meta['frames'][1]:06d}.mp4")
                camera.clip_requests.append(alert)
            self._emit(alert)

    def _emit(self, event: dict) -> None:
        self.events.write(event)

    def _on_window_done(self, camera: CameraState, future: Future) -> None:
        """A window's future settled: a drop is counted; a failed classification is told once per
        camera and reason, on the console and as an event."""
        exc = future.exception()
        if isinstance(exc, WindowDropped):
            camera.dropped_windows += 1
        elif exc is not None:
            self._camera_error(camera, "classify", f"classification failed: {first_line(exc)}")

    def _camera_error(self, camera: CameraState, stage: str, message: str) -> None:
        """A pose or classification failure of ``camera``: once per message, on the console and as an
        ``error`` event (``stage``: pose or classify); the camera goes on."""
        if message in camera.errors:
            return
        camera.errors.append(message)
        self._say(f"camera {camera.spec.name}: {message}")
        self._emit({"kind": "error", "time": now_iso(), "camera": camera.spec.name, "stage": stage,
                    "message": message})

    def _run_line(self, specs: list) -> dict:
        """The events file's first line of this run: what ran, how, and from which command."""
        from stgcn_rt.files import sha256_of
        from stgcn_rt.runtime.classifier import is_url

        config, classifier = self.config, self.classifier
        model = self.model
        return {
            "kind": "run", "time": now_iso(), "stgcn_rt": __version__,
            "model": mask_url(model) if model else None,
            "model_sha256": sha256_of(model) if model and not is_url(model) else None,
            "backend": classifier.name, "device": classifier.device, "precision": classifier.precision,
            "classes": list(classifier.classes), "untrained": classifier.untrained,
            "pose": self.pose, "pose_precision": self.pose_precision, "pose_models": config.pose_models,
            "pose_process": self.pose_process, "pose_compiled": self.pose_compiled,
            "pose_ready_s": self.pose_ready_s,  # seconds its start took: loading, compiling, warming up
            "persons": self.persons, "stride": config.stride, "min_frames": self.min_frames,
            "threshold": config.threshold, "min_windows": config.min_windows,
            "alert_class": classifier.classes[self.alert_index],
            "cameras": {spec.name: spec.display for spec in specs},
            "command": config.command,
        }

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> list[CameraSummary]:
        config = self.config
        if config.display and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise StgcnError("--display needs a screen (no DISPLAY is set): use --save-video DIR instead")
        self.started = time.perf_counter()
        self.interrupted = False
        specs = parse_sources(config.sources)
        decoders = DecoderPool(specs, config.decode_workers, pace=config.pace, notify=self._inbox.put,
                               feed=bool(self.pose_process))
        began = time.perf_counter()
        try:  # before the run line: a pose backend that cannot start writes nothing
            pose = self._pose_stage(decoders)
        except BaseException:
            decoders.close()
            raise
        self.pose_ready_s = round(time.perf_counter() - began, 1)
        if self.pose == "blazepose":  # after its 'warming up' line (MediaPipe's workers start as they go)
            self._say(f"pose: ready after {self.pose_ready_s:g} s")
        self.run_id = new_run_id()
        self.events = EventLog(config.events, {"run": self.run_id,
                                               **({"untrained": True} if self.classifier.untrained else {})})
        self._emit(self._run_line(specs))
        scheduler = BatchScheduler(self.classifier, config.max_batch, config.max_wait_ms,
                                   queue_size=max(256, 8 * len(specs)), on_result=self._on_result)
        try:
            for spec in specs:
                ring = SkeletonWindow(self.seq_len, config.stride, self.min_frames)
                self.cameras[spec.name] = CameraState(spec, decoders.readers[spec.name], ring)
            self._rows = list(self.cameras.values())  # in the decoders' order
            decoders.start()
            lane_here = self.pose == "blazepose" and config.pose_device.startswith("cuda") and not self.pose_process
            with _switch_interval(POSE_SWITCH_INTERVAL_S if lane_here else None):
                self._loop(pose, scheduler, decoders)
        except KeyboardInterrupt:
            self.interrupted = True
            self._say("interrupted: stopping sources and flushing events")
        finally:
            decoders.close()
            for camera in self.cameras.values():
                self._report_reader_error(camera, others_continue=False)  # one that failed after the loop's last look
            scheduler.close()
            pose.close()
            for camera in self.cameras.values():
                if camera.video is not None:
                    camera.video.close()
            self.events.close()
        return self.summaries()

    @property
    def pose_process(self) -> bool | None:
        """Whether BlazePose runs in a process of its own (None: the pose is MediaPipe's, in workers)."""
        if self.pose != "blazepose":
            return None
        process = self.config.pose_process
        return self.config.pose_device.startswith("cuda") if process is None else process

    @property
    def pose_compiled(self) -> bool | None:
        """Whether BlazePose's stages are compiled (where compiling then fails, they run uncompiled
        after a warning); None: the pose is MediaPipe's."""
        if self.pose != "blazepose":
            return None
        from stgcn_rt.pose.blazepose import stage_modes

        return stage_modes(self.config.pose_device, self.config.pose_models, self.config.pose_graphs)[1]

    def _pose_stage(self, decoders: DecoderPool) -> PoseStage | PoseProcess:
        """The pose stage for the cameras ``decoders`` decode (BlazePose reads their frames in place)."""
        config = self.config
        if self.pose != "blazepose":
            return PosePool(self._posed, config.pose_workers, self.persons, config.detector)
        networks = self.pose_precision or f"from {config.pose_models}"
        where = " in a process of its own" if self.pose_process else ""
        compiling = " (compiling their stages first)" if self.pose_compiled else ""
        self._say(f"pose: BlazePose {networks} on {config.pose_device}{where}, warming up its networks{compiling}")
        options: dict[str, Any] = {
            "device": config.pose_device, "precision": self.pose_precision or "fp32", "cameras": len(decoders.readers),
            "persons": self.persons, "models": config.pose_models, "lanes": config.pose_lanes,
            "graphs": config.pose_graphs}
        if self.pose_process:
            return PoseProcess(functools.partial(self._posed_fed, decoders), decoders.shared, decoders.frames,
                               decoders.feed, **options)
        stage = BlazePoseStage(self._posed, **options)
        stage.pin(decoders.frames)
        return stage

    def _loop(self, pose: PoseStage | PoseProcess, scheduler: BatchScheduler, decoders: DecoderPool) -> None:
        """Works when there is news (a camera's frame or counters from its decoder, a step of poses
        done), on the cameras it concerns alone, waiting in between; then hands the slots of the
        frames done back to the decoders, and the frames taken to the pose stage, all at once (none
        where the decoders feed BlazePose's process; one that died ends the run). A loop
        that polled every camera would hold the interpreter lock most of the time at hundreds of
        cameras, and the threads that need it (the decoders' router, a pose lane between its GPU
        calls) would wait for it."""
        waiting = {name for name, camera in self.cameras.items() if not camera.finished}
        last_status = time.perf_counter()
        while waiting:
            news: set[str] = set()
            try:
                item = self._inbox.get(timeout=STATUS_WAKE_S)
                while True:
                    if isinstance(item, str):
                        news.add(item)
                    else:
                        self._handle_step(*item, scheduler)
                        news.update(camera.spec.name for camera, _ in item[0])
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            for name in news:
                camera = self.cameras[name]
                if not isinstance(pose, PoseProcess):
                    self._feed_pose(camera, pose)
                self._report_reader_error(camera)
                self._report_reconnects(camera)
                if camera.finished:
                    waiting.discard(name)
            decoders.flush()
            if not isinstance(pose, PoseProcess):
                pose.flush()
            elif pose.failure:
                raise StgcnError(f"{pose.failure}: no camera's frames can be posed, so the run ends (its events so far "
                                 f"are in {self.config.events}); start it again, and if it stops again the system's "
                                 "log says why (out of memory?)")
            if time.perf_counter() - last_status >= self.config.status_interval:
                self._print_status(scheduler)
                last_status = time.perf_counter()

    def _feed_pose(self, camera: CameraState, pose: PoseStage) -> None:
        name, frames = camera.spec.name, camera.reader.frames
        while camera.submitted - camera.frames_done < self.config.max_inflight and not frames.empty():
            frame = frames.get_nowait()
            camera.submitted += 1  # first: a stage may answer at once
            pose.submit(name, frame.image, (camera, frame))

    def _posed(self, jobs: list[tuple[CameraState, Frame]], step: PosedStep) -> None:
        """A pose stage's answer (on its thread): for the loop."""
        self._inbox.put((jobs, step))

    def _posed_fed(self, decoders: DecoderPool, fed: list[Fed], step: PosedStep) -> None:
        """BlazePose's process's answer (on its answering thread), its frames as ``decoders`` fed them: for the loop."""
        cameras, frame = self._rows, decoders.frame
        self._inbox.put(([(cameras[row], frame(row, slot, index, timestamp)) for row, slot, index, timestamp in fed],
                         step))

    def _handle_step(self, jobs: list[tuple[CameraState, Frame]], step: PosedStep, scheduler: BatchScheduler) -> None:
        """A step's frames, one of a camera each, in its windows; their slots handed back."""
        keypoints = step.keypoints.transpose(0, 3, 2, 1)  # (frames, M, V, C) -> (frames, C, V, M), a view
        found, posed = step.found, time.time()
        for i, (camera, frame) in enumerate(jobs):
            try:
                if step.error:
                    self._camera_error(camera, "pose", f"{step.error} (frames continue without a person)")
                self._handle_frame(camera, frame, keypoints[i], bool(found[i]), step, posed, scheduler)
            finally:
                camera.reader.release(frame)

    def _handle_frame(self, camera: CameraState, frame: Frame, keypoints: np.ndarray, found: bool, step: PosedStep,
                      posed: float, scheduler: BatchScheduler) -> None:
        """``keypoints``: the frame's (C, V, M), ``found``: whether anyone is in them; ``posed``: when
        the pipeline had them."""
        camera.persons_seen += found
        camera.pose_ms.add(step.milliseconds)
        camera.pose_batch.add(len(step.keypoints))
        camera.frames_done += 1
        if camera.ring.push(keypoints):
            window = camera.ring.window()
            first = camera.ring.first_frame
            present = window.reshape(-1, window.shape[-1]).any(axis=0)
            meta = {"frames": [first, camera.ring.count - 1],
                    "persons": [int(slot) for slot in np.flatnonzero(present)], "read": frame.timestamp,
                    "posed": posed}
            camera.windows += 1
            future = scheduler.submit(camera.spec.name, window, meta)
            future.add_done_callback(functools.partial(self._on_window_done, camera))
        config = self.config
        if config.save_video is None and config.save_clips is None and not config.display:
            return
        label = camera.label or (None, None)
        image = draw(frame.image, keypoints, label[0], label[1], camera.alert_active, self.classifier.untrained)
        fps = camera.reader.counters.fps or 25.0
        if config.save_video is not None:
            if camera.video is None:
                camera.video = VideoOutput(config.save_video / f"{camera.spec.name}.mp4", fps)
                self._note_codec(camera.video)
            camera.video.write(image)
        if config.save_clips is not None:
            camera.recent.append(image)
            while len(camera.recent) > self.seq_len:
                camera.recent.popleft()
            while camera.clip_requests:
                self._write_clip(camera, camera.clip_requests.popleft(), fps)
        if config.display:
            self._show(camera.spec.name, image)

    def _note_codec(self, video: VideoOutput) -> None:
        """Say once when annotated video falls back to mp4v, which browsers do not play."""
        if video.codec == "opencv-mp4v" and not self._noted_mp4v:
            self._noted_mp4v = True
            self._say(f"note: {MP4V_NOTE}")

    def _write_clip(self, camera: CameraState, alert: dict, fps: float) -> None:
        """The frames of the alert's window (those still in memory), as an MP4 beside the events."""
        clip = VideoOutput(alert["clip"], fps)
        self._note_codec(clip)
        for image in camera.recent:
            clip.write(image)
        clip.close()

    def _show(self, name: str, image: np.ndarray) -> None:
        from stgcn_rt.errors import require

        cv2 = require("cv2", "pipeline", "--display")
        try:
            cv2.imshow(f"stgcn-rt: {name}", image)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                raise KeyboardInterrupt
        except cv2.error as exc:
            raise StgcnError(f"--display failed ({str(exc).strip().splitlines()[-1][:120]}): this OpenCV has no "
                             "window support; use --save-video DIR") from exc

    def _report_reader_error(self, camera: CameraState, others_continue: bool = True) -> None:
        error = camera.reader.counters.error
        if error and error not in camera.errors:
            camera.errors.append(error)
            others = "; the other cameras continue" if others_continue and len(self.cameras) > 1 else ""
            self._say(f"camera {camera.spec.name}: {error}{others}")
            self._emit({"kind": "camera", "time": now_iso(), "camera": camera.spec.name, "state": "failed",
                        "message": error})

    def _report_reconnects(self, camera: CameraState) -> None:
        """A live source's retries as camera events: connecting (no frame yet) or reconnecting, with the
        attempt, then reconnected once frames come again."""
        counters = camera.reader.counters
        if counters.reconnects > camera.reconnects:
            camera.reconnects = counters.reconnects
            state = "reconnecting" if counters.read else "connecting"
            if camera.reconnect_read is None:
                camera.reconnect_read = counters.read
            self._emit({"kind": "camera", "time": now_iso(), "camera": camera.spec.name, "state": state,
                        "attempt": counters.reconnects})
        elif camera.reconnect_read is not None and counters.read > camera.reconnect_read:
            camera.reconnect_read = None
            self._emit({"kind": "camera", "time": now_iso(), "camera": camera.spec.name, "state": "reconnected",
                        "attempts": counters.reconnects})

    def _say(self, text: str) -> None:
        print(text, file=self.status or sys.stderr, flush=True)

    def _print_status(self, scheduler: BatchScheduler) -> None:
        elapsed = time.perf_counter() - self.started
        self._say(" | ".join(camera.status(elapsed) for camera in self.cameras.values())
                  + f" | windows queued {scheduler.depth}")
        for camera in self.cameras.values():
            self._warn_if_behind(camera)

    def _warn_if_behind(self, camera: CameraState) -> None:
        """One warning line per camera that falls behind real time, saying what would help. Judged
        from the second status interval of frames on (the first holds the workers' start)."""
        rate = (camera.frames_done - camera.frames_at_status) / self.config.status_interval
        started = camera.frames_at_status > 0
        camera.frames_at_status = camera.frames_done
        if camera.behind or not started or camera.finished:
            return
        why = camera.falling_behind(rate)
        if why is not None:
            camera.behind = True
            self._say(f"warning: camera {camera.spec.name} falls behind real time ({why}): {BEHIND_ADVICE}")

    def summaries(self) -> list[CameraSummary]:
        out = []
        for camera in self.cameras.values():
            c = camera.reader.counters
            out.append(CameraSummary(
                camera=camera.spec.name, source=camera.spec.display, frames=camera.frames_done,
                frames_dropped=c.dropped, frames_failed=c.failed,
                person_rate=camera.persons_seen / camera.frames_done if camera.frames_done else 0.0,
                windows=camera.windows, predictions=camera.predictions,
                windows_dropped=camera.dropped_windows, alerts=camera.alerts,
                pose_ms=camera.pose_ms.mean(), pose_batch=camera.pose_batch.mean(), queue_ms=camera.queue_ms.mean(),
                model_ms=camera.model_ms.mean(),
                errors=list(camera.errors)))
        return out


@dataclass
class RunResult:
    """What a run left: each camera's summary, and what the events file got from it."""

    summaries: list[CameraSummary]
    interrupted: bool
    run_id: str
    events: dict[str, int]  # lines written, by kind


def run_with_model(config: PipelineConfig, model: str, device: str = "cpu", fast: str | None = None,
                   report: Callable[[str], None] = print) -> RunResult:
    """Open ``model`` (backend by suffix) and run the pipeline.
    ``fast``: a mode of ``--fast`` (:data:`~stgcn_rt.runtime.configurations.FAST_MODES`), or None.

    Raises when no source delivered a single frame, so that a run with only bad sources fails.
    Nothing is written before the run starts: the events file at its first line, a video folder at
    its first video.
    """
    from stgcn_rt.files import check_output_folder, check_output_path
    from stgcn_rt.pipeline import require_pipeline_packages
    from stgcn_rt.runtime import load_classifier
    from stgcn_rt.runtime.classifier import warm_up_with_progress
    from stgcn_rt.runtime.heap import startup_objects_frozen

    require_pipeline_packages()
    check_output_path(config.events, option="--events")
    for folder, option in ((config.save_video, "--save-video"), (config.save_clips, "--save-clips")):
        if folder is not None:
            check_output_folder(folder, option)
    options: dict[str, Any] = {"persons": config.persons or 1} if is_checkpoint(model) else {}
    if fast:
        options.update(fast_torch_options(model, device, fast))
    with load_classifier(model, device=device, **options) as classifier:
        report(f"classifier {classifier.name} on {classifier.device}: {mask_url(model)}, "
               f"classes {', '.join(classifier.classes)}")
        if fast:
            report(f"compiling and capturing batch sizes up to {config.max_batch} before the cameras start "
                   "(a minute or more on a first start; restarts read the kernels from Triton's cache)")
            warm_up_with_progress(classifier, config.max_batch, report)
        elif classifier.device.startswith("cuda"):  # its first calls load kernels: seconds the first windows would wait
            fixed, _, seq_len, _, persons = classifier.input_shape
            window = (CHANNELS, seq_len or FRAMES, JOINTS, persons or config.persons or 1)
            for batch in sorted({fixed or 1, fixed or config.max_batch}):
                classifier.predict(np.zeros((batch, *window), np.float32))
        pipeline = Pipeline(config, classifier, model=model)
        with startup_objects_frozen():
            summaries = pipeline.run()
    if not pipeline.interrupted and summaries and all(s.frames == 0 for s in summaries):
        raise StgcnError("no source delivered a frame: " + "; ".join(e for s in summaries for e in s.errors))
    return RunResult(summaries, pipeline.interrupted, pipeline.run_id, dict(pipeline.events.counts))


def summary_table(summaries: list[CameraSummary]) -> str:
    """One row per camera. predictions and alerts (raised) count the camera's lines in the events
    file; dropped counts windows the queue dropped and, for live sources, frames."""
    header = (f"{'camera':<16}{'frames':>8}{'person':>8}{'windows':>9}{'predictions':>13}{'alerts':>8}"
              f"{'dropped':>9}{'pose ms':>9}{'queue ms':>10}{'model ms':>10}")
    lines = [header]
    for s in summaries:
        lines.append(f"{s.camera:<16}{s.frames:>8}{s.person_rate:>8.0%}{s.windows:>9}{s.predictions:>13}"
                     f"{s.alerts:>8}{s.windows_dropped + s.frames_dropped:>9}{s.pose_ms:>9.1f}{s.queue_ms:>10.1f}"
                     f"{s.model_ms:>10.1f}")
        lines.extend(f"  {s.camera}: {error}" for error in s.errors)
    return "\n".join(lines)


EVENT_NAMES = {"run": "run line", "camera": "camera event"}


def events_line(path: Path, result: RunResult) -> str:
    """Where this run's events went and how many lines of each kind it appended."""
    counts = ", ".join(f"{count} {EVENT_NAMES.get(kind, kind)}{'' if count == 1 else 's'}"
                       for kind, count in result.events.items())
    return f"events: {path} (run {result.run_id}: {counts or 'nothing written'})"


def summaries_as_dicts(summaries: list[CameraSummary]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(s) for s in summaries]
