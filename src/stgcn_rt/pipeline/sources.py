"""Video sources: files, folders of them, camera indices and RTSP/HTTP URLs through OpenCV, one reader thread each.

Frames are resized to the contract's 640x480. Files can be paced to their real frame rate; live
sources reconnect with exponential backoff. Each reader counts frames read, dropped and failed.
Passwords in URLs never reach a log line: every message uses :func:`mask_url`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from stgcn_rt.errors import StgcnError, one_line, require
from stgcn_rt.urls import mask_url

FRAME_SIZE = (640, 480)
#: FFmpeg's threads decoding one camera. Its default, a thread per core decoding frames side by side,
#: holds back one frame per thread beyond the first (on a 16-core host 15 frames, 600 ms of a live
#: camera at 25 fps, unseen in the frames' timestamps) and spends more CPU a frame when many cameras
#: decode at once, each in a thread of its own already (docs/performance.md, session 34)
DECODE_THREADS = 1
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
log = logging.getLogger(__name__)


@dataclass
class SourceSpec:
    """What the user passed to --source, and a unique display name for it."""

    location: str
    name: str

    @property
    def live(self) -> bool:
        return self.location.isdigit() or "://" in self.location

    @property
    def display(self) -> str:
        return mask_url(self.location)

    def open_argument(self) -> str | int:
        return int(self.location) if self.location.isdigit() else self.location


def video_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The videos directly in ``folder``, by name; none is one clear error."""
    videos = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) \
        if Path(folder).is_dir() else []
    if not videos:
        raise StgcnError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
    return videos


def parse_sources(locations: list[str]) -> list[SourceSpec]:
    """One source per location; a folder stands for each video in it, one camera each."""
    specs: list[SourceSpec] = []
    used: set[str] = set()
    files = [str(video) for location in locations
             for video in (video_files(location) if not location.isdigit() and os.path.isdir(location)
                           else [location])]
    for location in files:
        if location.isdigit():
            base = f"camera{location}"
        elif "://" in location:
            base = urlsplit(location).hostname or "stream"
        else:
            base = Path(location).stem or "video"
        name, n = base, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        specs.append(SourceSpec(location, name))
    return specs


def video_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The BGR frames of a video file, in order, as OpenCV decodes them. The file is opened at once:
    one that cannot be is one line here, not at the first frame."""
    cv2 = require("cv2", "pipeline", "Reading video")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise StgcnError(f"cannot open video {path}")
    return _frames_of(capture)


def open_capture(cv2, location: str | int):  # noqa: ANN001, ANN201 - the cv2 module, a cv2.VideoCapture
    """A capture of a camera's ``location``: a file or URL through FFmpeg in :data:`DECODE_THREADS`
    where this OpenCV has FFmpeg and the option (4.6 on); a device index, a GStreamer pipeline (its
    elements joined by ``!``, as on a Jetson) or another build's file as OpenCV picks."""
    if (isinstance(location, str) and "!" not in location and hasattr(cv2, "CAP_PROP_N_THREADS")
            and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG)):
        return cv2.VideoCapture(location, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])
    return cv2.VideoCapture(location)


def _frames_of(capture) -> Iterator[np.ndarray]:  # noqa: ANN001 - cv2.VideoCapture
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


@dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray
    slot: int | None = None  # where a decoding process wrote it (:mod:`stgcn_rt.pipeline.decoders`)


@dataclass
class SourceCounters:
    read: int = 0
    dropped: int = 0
    failed: int = 0
    reconnects: int = 0
    error: str | None = None
    finished: bool = False
    fps: float = 0.0  # the source's own frame rate, once opened


class FrameReader(threading.Thread):
    """Reads one source into a bounded queue until it ends, fails for good, or ``stop()``.

    Files block when the queue is full (no frame is lost); live sources drop their oldest
    queued frame instead, and count it, so that latency stays bounded.
    """

    def __init__(self, spec: SourceSpec, queue_size: int = 64, pace: bool = False,
                 max_retries: int = 5, max_failed_in_a_row: int = 25) -> None:
        super().__init__(name=f"reader-{spec.name}", daemon=True)
        self.spec = spec
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=queue_size)
        self.pace = pace
        self.max_retries = max_retries
        self.max_failed_in_a_row = max_failed_in_a_row
        self.counters = SourceCounters()
        #: the frames handed on in all, where a reader knows it once finished (a decoding process's,
        #: RemoteReader); None: all are in ``frames``
        self.sent: int | None = None
        self._stop_event = threading.Event()
        # FFmpeg's own messages ("moov atom not found") would interleave with ours; errors are
        # reported once per camera by the pipeline instead
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        self._cv2 = require("cv2", "pipeline", "Reading video")

    def stop(self) -> None:
        self._stop_event.set()

    def release(self, frame: Frame) -> None:
        """Nothing to hand back: this reader's frames own their images (see RemoteReader.release)."""

    def _buffer(self) -> tuple[np.ndarray | None, int | None]:
        """Where the next frame is decoded: a (480, 640, 3) array and the slot it is, or (None, None)
        for an image of the frame's own (here always; a decoding process's reader decodes into the
        slots it shares with the pipeline)."""
        return None, None

    def _unused(self, slot: int | None) -> None:
        """The frame decoded into ``slot`` (:meth:`_buffer`) went nowhere: failed, dropped or stopped."""

    @property
    def done(self) -> bool:
        return self.counters.finished and self.frames.empty()

    def run(self) -> None:
        try:
            self._read_with_retries()
        except Exception as exc:  # a reader must never take the pipeline down
            self.counters.error = one_line(exc)
        finally:
            self.counters.finished = True

    def _open(self):  # noqa: ANN202 - cv2.VideoCapture
        capture = open_capture(self._cv2, self.spec.open_argument())
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _read_with_retries(self) -> None:
        attempt = 0
        while not self._stop_event.is_set():
            capture = self._open()
            if capture is None:
                if not self.spec.live and not Path(self.spec.location).exists():
                    self.counters.error = f"cannot open {self.spec.display}: no such file"
                    return
                if not self.spec.live or attempt >= self.max_retries:
                    self.counters.error = f"cannot open {self.spec.display}"
                    return
                attempt += 1
                self.counters.reconnects += 1
                self._stop_event.wait(min(2 ** attempt * 0.25, 30.0))
                continue
            attempt = 0
            ended_cleanly = self._read(capture)
            capture.release()
            if ended_cleanly or not self.spec.live:
                return
            self.counters.reconnects += 1
            log.warning("camera %s: stream lost, reconnecting", self.spec.name)

    def _read(self, capture) -> bool:  # noqa: ANN001
        """Read until the end (True) or until the stream breaks (False)."""
        cv2 = self._cv2
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.counters.fps = fps
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        failed_in_a_row = 0
        start = time.perf_counter()
        while not self._stop_event.is_set():
            buffer, slot = self._buffer()
            if self._stop_event.is_set():
                self._unused(slot)
                break
            ok, image = capture.read(buffer)
            if not ok or image is None:
                self._unused(slot)
                position = int(capture.get(cv2.CAP_PROP_POS_FRAMES) or 0)
                if not self.spec.live and (total <= 0 or position >= total):
                    return True  # end of file
                failed_in_a_row += 1
                self.counters.failed += 1
                if failed_in_a_row >= self.max_failed_in_a_row:
                    if not self.spec.live:
                        self.counters.error = f"{self.spec.display}: {failed_in_a_row} unreadable frames in a row"
                    return not self.spec.live
                continue
            failed_in_a_row = 0
            if image.shape[1::-1] != FRAME_SIZE:
                image = cv2.resize(image, FRAME_SIZE, dst=buffer)
            elif buffer is not None and image is not buffer:  # OpenCV gave an image of its own
                buffer[...] = image
                image = buffer
            if self.pace and not self.spec.live:
                delay = start + self.counters.read / fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            frame = Frame(self.counters.read, time.time(), image, slot)  # stamped when a camera would have given it
            self.counters.read += 1
            self._put(frame)
        return True

    def _put(self, frame: Frame) -> None:
        if not self.spec.live:
            while not self._stop_event.is_set():
                try:
                    self.frames.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    continue
            self._unused(frame.slot)
            return
        while True:
            try:
                self.frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._unused(self.frames.get_nowait().slot)
                    self.counters.dropped += 1
                except queue.Empty:
                    pass
