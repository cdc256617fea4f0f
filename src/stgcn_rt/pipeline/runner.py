"""The multi-camera pipeline: sources -> pose (worker processes) -> windows -> batching scheduler
-> events. One bad camera or frame never stops the others; every event is on disk when reported."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from stgcn_rt.errors import StgcnError
from stgcn_rt.pipeline.annotate import VideoOutput, draw
from stgcn_rt.pipeline.events import AlertPolicy, EventLog, now_iso
from stgcn_rt.pipeline.pose_pool import PosePool, PoseResult
from stgcn_rt.pipeline.sources import Frame, FrameReader, SourceSpec, parse_sources
from stgcn_rt.runtime.classifier import Classifier, fast_torch_options, is_checkpoint
from stgcn_rt.runtime.predict import SkeletonWindow
from stgcn_rt.runtime.scheduler import BatchScheduler, WindowDropped, WindowResult
from stgcn_rt.urls import mask_url

log = logging.getLogger(__name__)
NUM_JOINTS = 33


@dataclass
class PipelineConfig:
    sources: list[str]
    events: Path
    persons: int = 1
    stride: int = 5
    save_video: Path | None = None
    save_clips: Path | None = None  # a clip of the window's frames for every alert raised
    display: bool = False
    threshold: float = 0.8
    min_windows: int = 3
    alert_class: str | None = None  # default: the last class (e.g. "shoplifting")
    pose_workers: int | None = None
    detector: str = "hog"  # multi-person only: hog (offline, built into OpenCV) or yolo:WEIGHTS
    pace: bool = False
    max_batch: int = 32
    max_wait_ms: float = 10.0
    status_interval: float = 2.0
    max_inflight: int = 4  # frames per camera queued at the pose workers


@dataclass
class CameraState:
    spec: SourceSpec
    reader: FrameReader
    ring: SkeletonWindow
    pending: deque = field(default_factory=deque)  # (Frame, Future[PoseResult])
    video: VideoOutput | None = None
    frames_done: int = 0
    persons_seen: int = 0
    windows: int = 0
    predictions: int = 0
    alerts: int = 0
    dropped_windows: int = 0
    pose_ms: list[float] = field(default_factory=list)
    classify_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    label: tuple[str, float] | None = None
    alert_active: bool = False
    window_futures: list[Future] = field(default_factory=list)
    recent: deque = field(default_factory=deque)  # (frame index, annotated image), for alert clips
    clip_requests: deque = field(default_factory=deque)  # alert events waiting for their clip

    @property
    def finished(self) -> bool:
        return self.reader.done and not self.pending

    def status(self, elapsed: float) -> str:
        """This camera's part of the periodic status line, ``elapsed`` seconds into the run."""
        c = self.reader.counters
        if c.error is not None:
            return f"{self.spec.name}: failed"
        if c.read == 0 and c.reconnects:
            return f"{self.spec.name}: connecting (retry {c.reconnects})"
        if self.finished:
            return f"{self.spec.name}: done, {self.frames_done} frames"
        pose_ms = np.mean(self.pose_ms[-50:]) if self.pose_ms else 0.0
        classify_ms = np.mean(self.classify_ms[-20:]) if self.classify_ms else 0.0
        return (f"{self.spec.name}: {self.frames_done / elapsed:.1f} fps, pose {pose_ms:.0f} ms, "
                f"classify {classify_ms:.0f} ms, drops {c.dropped + self.dropped_windows}")


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
    alerts: int
    pose_ms: float
    classify_ms: float
    errors: list[str]


class Pipeline:
    def __init__(self, config: PipelineConfig, classifier: Classifier, status: TextIO | None = None) -> None:
        model_persons = classifier.input_shape[4]
        if model_persons not in (None, config.persons):
            raise StgcnError(f"the model takes M={model_persons} persons but --persons is {config.persons}")
        if config.stride < 1:
            raise StgcnError(f"--stride must be 1 or more, got {config.stride}")
        self.config = config
        self.classifier = classifier
        self.seq_len = classifier.input_shape[2] or 150
        self.status = status
        alert_name = config.alert_class or classifier.classes[-1]
        if alert_name not in classifier.classes:
            raise StgcnError(f"--alert-class {alert_name} is not one of the model's classes "
                             f"({', '.join(classifier.classes)})")
        self.alert_index = classifier.classes.index(alert_name)
        self.policy = AlertPolicy(self.alert_index, config.threshold, config.min_windows)
        self.cameras: dict[str, CameraState] = {}

    # -- results (called on the scheduler's worker thread) ---------------------------------
    def _on_result(self, result: WindowResult) -> None:
        name = str(result.camera)  # the pipeline submits its cameras by name
        camera = self.cameras[name]
        probs = result.probabilities
        index = int(np.argmax(probs))
        camera.predictions += 1
        camera.classify_ms.append(result.latency_s * 1000)
        camera.label = (self.classifier.classes[index], float(probs[index]))
        meta = result.meta
        event = {
            "kind": "prediction", "time": now_iso(), "camera": result.camera,
            "frames": meta["frames"], "persons": meta["persons"],
            "class": self.classifier.classes[index],
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.classifier.classes, probs)},
            "latency_ms": round(result.latency_s * 1000, 2), "batch": result.batch_size,
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

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> list[CameraSummary]:
        config = self.config
        if config.display and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise StgcnError("--display needs a screen (no DISPLAY is set): use --save-video DIR instead")
        self.started = time.perf_counter()
        self.interrupted = False
        self.events = EventLog(config.events)
        specs = parse_sources(config.sources)
        pose = PosePool(config.pose_workers, config.persons, config.detector)
        scheduler = BatchScheduler(self.classifier, config.max_batch, config.max_wait_ms,
                                   queue_size=max(256, 8 * len(specs)), on_result=self._on_result)
        try:
            for spec in specs:
                reader = FrameReader(spec, pace=config.pace)
                self.cameras[spec.name] = CameraState(spec, reader, SkeletonWindow(self.seq_len, config.stride))
                reader.start()
            self._loop(pose, scheduler)
        except KeyboardInterrupt:
            self.interrupted = True
            self._say("interrupted: stopping sources and flushing events")
        finally:
            for camera in self.cameras.values():
                camera.reader.stop()
                self._report_reader_error(camera, others_continue=False)  # one that failed after the loop's last look
            scheduler.close()
            pose.close()
            for camera in self.cameras.values():
                self._settle_windows(camera)
                if camera.video is not None:
                    camera.video.close()
            self.events.close()
        return self.summaries()

    def _loop(self, pose: PosePool, scheduler: BatchScheduler) -> None:
        last_status = time.perf_counter()
        while not all(c.finished for c in self.cameras.values()):
            busy = False
            for camera in self.cameras.values():
                busy |= self._feed_pose(camera, pose)
                busy |= self._collect_pose(camera, scheduler)
                self._report_reader_error(camera)
            if time.perf_counter() - last_status >= self.config.status_interval:
                self._print_status(scheduler)
                last_status = time.perf_counter()
            if not busy:
                time.sleep(0.002)

    def _feed_pose(self, camera: CameraState, pose: PosePool) -> bool:
        fed = False
        while len(camera.pending) < self.config.max_inflight and not camera.reader.frames.empty():
            frame = camera.reader.frames.get_nowait()
            camera.pending.append((frame, pose.submit(camera.spec.name, frame.image)))
            fed = True
        return fed

    def _collect_pose(self, camera: CameraState, scheduler: BatchScheduler) -> bool:
        collected = False
        while camera.pending and camera.pending[0][1].done():
            frame, future = camera.pending.popleft()
            self._handle_frame(camera, frame, self._pose_result(camera, future), scheduler)
            collected = True
        return collected

    def _pose_result(self, camera: CameraState, future: Future) -> PoseResult:
        try:
            result = future.result()
        except Exception as exc:  # a crashed worker: this frame counts as without a person
            result = PoseResult(np.zeros((self.config.persons, NUM_JOINTS, 3), np.float32), 0.0,
                                f"pose worker failed: {type(exc).__name__}: {exc}")
        if result.error and result.error not in camera.errors:
            camera.errors.append(result.error)
            self._say(f"camera {camera.spec.name}: {result.error} (frames continue without a person)")
        return result

    def _handle_frame(self, camera: CameraState, frame: Frame, pose: PoseResult,
                      scheduler: BatchScheduler) -> None:
        keypoints = np.ascontiguousarray(pose.keypoints.transpose(2, 1, 0))  # (M, V, C) -> (C, V, M)
        if pose.found:
            camera.persons_seen += 1
        camera.pose_ms.append(pose.milliseconds)
        camera.frames_done += 1
        if camera.ring.push(keypoints):
            window = camera.ring.window()
            first = camera.ring.first_frame
            present = window.reshape(-1, window.shape[-1]).any(axis=0)
            meta = {"frames": [first, camera.ring.count - 1],
                    "persons": [int(slot) for slot in np.flatnonzero(present)]}
            camera.windows += 1
            camera.window_futures.append(scheduler.submit(camera.spec.name, window, meta))
        config = self.config
        if config.save_video is None and config.save_clips is None and not config.display:
            return
        label = camera.label or (None, None)
        image = draw(frame.image, keypoints, label[0], label[1], camera.alert_active)
        fps = camera.reader.counters.fps or 25.0
        if config.save_video is not None:
            if camera.video is None:
                camera.video = VideoOutput(config.save_video / f"{camera.spec.name}.mp4", fps)
            camera.video.write(image)
        if config.save_clips is not None:
            camera.recent.append(image)
            while len(camera.recent) > self.seq_len:
                camera.recent.popleft()
            while camera.clip_requests:
                self._write_clip(camera, camera.clip_requests.popleft(), fps)
        if config.display:
            self._show(camera.spec.name, image)

    def _write_clip(self, camera: CameraState, alert: dict, fps: float) -> None:
        """The frames of the alert's window (those still in memory), as an MP4 beside the events."""
        clip = VideoOutput(alert["clip"], fps)
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

    def _settle_windows(self, camera: CameraState) -> None:
        for future in camera.window_futures:
            exc = future.exception()
            if isinstance(exc, WindowDropped):
                camera.dropped_windows += 1
            elif exc is not None and str(exc) not in camera.errors:
                camera.errors.append(f"classification failed: {exc}")
        camera.window_futures.clear()

    def _report_reader_error(self, camera: CameraState, others_continue: bool = True) -> None:
        error = camera.reader.counters.error
        if error and error not in camera.errors:
            camera.errors.append(error)
            others = "; the other cameras continue" if others_continue and len(self.cameras) > 1 else ""
            self._say(f"camera {camera.spec.name}: {error}{others}")

    def _say(self, text: str) -> None:
        print(text, file=self.status or sys.stderr, flush=True)

    def _print_status(self, scheduler: BatchScheduler) -> None:
        elapsed = time.perf_counter() - self.started
        self._say(" | ".join(camera.status(elapsed) for camera in self.cameras.values())
                  + f" | queue {scheduler.depth}")

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
                pose_ms=float(np.mean(camera.pose_ms)) if camera.pose_ms else 0.0,
                classify_ms=float(np.mean(camera.classify_ms)) if camera.classify_ms else 0.0,
                errors=list(camera.errors)))
        return out


def run_with_model(config: PipelineConfig, model: str, device: str = "cpu", fast: str | None = None,
                   report: Callable[[str], None] = print) -> tuple[list[CameraSummary], bool]:
    """Open ``model`` (backend by suffix) and run the pipeline; returns (summaries, interrupted).
    ``fast``: a mode of ``--fast`` (:data:`~stgcn_rt.runtime.classifier.FAST_MODES`), or None.

    Raises when no source delivered a single frame, so that a run with only bad sources fails.
    """
    from stgcn_rt.files import check_output_path
    from stgcn_rt.pipeline import require_pipeline_packages
    from stgcn_rt.runtime import load_classifier
    from stgcn_rt.runtime.classifier import warm_up_with_progress
    from stgcn_rt.runtime.heap import startup_objects_frozen

    require_pipeline_packages()
    check_output_path(config.events)
    for folder in (config.save_video, config.save_clips):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"persons": config.persons} if is_checkpoint(model) else {}
    if fast:
        options.update(fast_torch_options(model, device, fast))
    with load_classifier(model, device=device, **options) as classifier:
        report(f"classifier {classifier.name} on {classifier.device}: {mask_url(model)}, "
               f"classes {', '.join(classifier.classes)}")
        if fast:
            report(f"compiling and capturing batch sizes up to {config.max_batch} before the cameras start "
                   "(a minute or more on a first start; restarts read the kernels from Triton's cache)")
            warm_up_with_progress(classifier, config.max_batch, report)
        pipeline = Pipeline(config, classifier)
        with startup_objects_frozen():
            summaries = pipeline.run()
    if not pipeline.interrupted and summaries and all(s.frames == 0 for s in summaries):
        raise StgcnError("no source delivered a frame: " + "; ".join(e for s in summaries for e in s.errors))
    return summaries, pipeline.interrupted


def summary_table(summaries: list[CameraSummary]) -> str:
    header = (f"{'camera':<16}{'frames':>8}{'person':>8}{'windows':>9}{'events':>8}{'dropped':>9}"
              f"{'alerts':>8}{'pose ms':>9}{'classify ms':>13}")
    lines = [header]
    for s in summaries:
        lines.append(f"{s.camera:<16}{s.frames:>8}{s.person_rate:>8.0%}{s.windows:>9}{s.predictions:>8}"
                     f"{s.windows_dropped + s.frames_dropped:>9}{s.alerts:>8}{s.pose_ms:>9.1f}{s.classify_ms:>13.1f}")
        lines.extend(f"  {s.camera}: {error}" for error in s.errors)
    return "\n".join(lines)


def summaries_as_dicts(summaries: list[CameraSummary]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(s) for s in summaries]
