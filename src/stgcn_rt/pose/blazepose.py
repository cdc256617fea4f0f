"""BlazePose as MediaPipe's pose graph runs it (model_complexity 1, video mode, smoothing on), with
each stage batched across cameras on one device: one detector call for the frames that need a
detection, one landmark call for every region of interest, per-camera state (ROIs, filters) on the
host beside them.

Per frame and camera, as ``mediapipe/modules/pose_landmark/pose_landmark_cpu.pbtxt`` (v0.10.21):
the region of interest comes from the last frame's landmarks, else from the detector (letterboxed
224 input, the best detection after weighted NMS, its hip centre and scale point); the landmark
network runs on that region (a rotated 256 crop); a pose flag under ``min_tracking_confidence``
drops the landmarks, so that the next frame detects again; the landmarks are refined with the
heatmap, projected back to the image and smoothed, and the two auxiliary ones give the next ROI.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from stgcn_rt.errors import StgcnError
from stgcn_rt.pose import geometry
from stgcn_rt.pose.filters import AUXILIARY_FILTER, FRAME_MICROSECONDS, LANDMARK_FILTER, LandmarkFilters
from stgcn_rt.pose.geometry import DETECTOR_SIZE, LANDMARK_SIZE, WHOLE_FRAME
from stgcn_rt.pose.graphs import CompiledCall, GraphedCall, can_compile
from stgcn_rt.pose.models import OUTPUTS, model_file
from stgcn_rt.pose.runners import PoseNetwork, load_network, model_path
from stgcn_rt.pose.tflite_graph import TfliteNetwork

LANDMARKS = 33  # the pose's own; the network gives 39, of which 33 and 34 place the next ROI
#: the heatmap neighbourhood the landmarks are refined over. The v0.10.21 graph asks for 7, but the
#: wheel's compiled graph refines over 9, the option's default: with 9 its landmarks on the demo clip's
#: first frame come out to within 1e-4 px, with 7 up to 1.5 px off (a hand's landmarks)
HEATMAP_KERNEL = 9
REFINE_MIN_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5  # the pose flag under which a pose counts as lost
#: with several persons a camera, how often (frames) a camera that tracks someone and has a free slot
#: looks for newcomers (0.2 s at 25 fps); one that tracks nobody looks every frame
DETECT_EVERY = 5
SUBPIXEL_BITS = 5  # OpenCV's INTER_BITS: warps place each source point to 1/32 of a pixel
OPENCV_SUBPIXELS = 1 << SUBPIXEL_BITS
#: whether BlazePose's stages (crops, PyTorch network, refinement) run through CUDA graphs on a GPU by
#: default (:mod:`stgcn_rt.pose.graphs`): on an H100 they took the pipeline's 64 cameras from p99 260 to
#: 35 ms (docs/benchmarks/pipeline-h100.md)
CUDA_GRAPHS = True
#: whether stages in CUDA graphs are compiled first (:class:`stgcn_rt.pose.graphs.CompiledCall`) where
#: Triton is installed: on an H100 the landmark stage at 256 crops fp16 took 15.0 ms instead of 21.8
COMPILE = True
BUCKET_STEP = 64  # on a GPU, batches above this run at its next multiple (below it, the next power of two)


def batch_bucket(count: int) -> int:
    """The batch a network call of ``count`` crops runs at on a GPU (padded with blank crops): the
    next power of two up to BUCKET_STEP, then the next multiple of it. The number of cameras that
    must detect, or that have a person, changes from step to step; cuDNN chooses (and for fp16 may
    compile) kernels at each batch shape it first meets, which stalls that step for up to seconds, so
    a run meets few shapes, each warmed up before the cameras start (:meth:`BlazePose.warm_up`)."""
    if count <= BUCKET_STEP:
        return 1 << max(count - 1, 0).bit_length()
    return -(-count // BUCKET_STEP) * BUCKET_STEP


def stage_modes(device: str | torch.device, models: str | os.PathLike[str] | None = None, graphs: bool | None = None,
                compiled: bool | None = None) -> tuple[bool, bool]:
    """Whether BlazePose's stages run through CUDA graphs, and whether those are compiled, on
    ``device`` (see :class:`BlazePoseNetworks` for the arguments): never on the CPU or with exported
    networks, compiled only where Triton is installed."""
    staged = (CUDA_GRAPHS if graphs is None else graphs) and models is None and torch.device(device).type == "cuda"
    return staged, staged and (COMPILE if compiled is None else compiled) and can_compile()


def warp(frames: torch.Tensor, index: torch.Tensor, affine: torch.Tensor, size: int, replicate: bool) -> torch.Tensor:
    """Crops (R, size, size, 3) of the uint8 RGB ``frames`` (F, H, W, 3), crop r from frame index[r]
    through its 2x3 map ``affine[r]`` (crop pixel -> image pixel), sampled exactly as OpenCV's
    warpPerspective samples uint8 images, as MediaPipe's converter hands them on: pixel centres at
    whole coordinates, each source point rounded to 1/32 of a pixel, bilinear in integers (weights
    in 1/1024), the sum rounded half up, neighbours outside the frame replicated from its border or
    zero. Values 0..255 as float32. The pose flag is that sensitive: a crop a rounding away from
    MediaPipe's can fall on the other side of its threshold, and tracking carries the difference on.
    Gathering the four neighbours also spares converting whole frames to float."""
    height, width = frames.shape[1:3]
    steps = torch.arange(size, device=frames.device, dtype=torch.float64)
    v, u = torch.meshgrid(steps, steps, indexing="ij")
    crop = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)  # (size*size, 3)
    points = torch.einsum("rij,pj->rpi", affine.double(), crop)  # (R, size*size, 2) image pixels
    fixed = torch.round(points * OPENCV_SUBPIXELS).to(torch.int32)  # OpenCV's cvRound, half to even
    whole, part = fixed >> SUBPIXEL_BITS, fixed & (OPENCV_SUBPIXELS - 1)
    pixels = frames.reshape(-1, frames.shape[-1])
    first = (index.to(torch.int32) * height)[:, None]  # each crop's frame's first row
    total = torch.zeros((*points.shape[:2], pixels.shape[1]), dtype=torch.int32, device=frames.device)
    for dy in (0, 1):
        y = whole[..., 1] + dy
        weight_y = part[..., 1] if dy else OPENCV_SUBPIXELS - part[..., 1]
        rows = (first + y.clamp(0, height - 1)) * width
        for dx in (0, 1):
            x = whole[..., 0] + dx
            weight = weight_y * (part[..., 0] if dx else OPENCV_SUBPIXELS - part[..., 0])
            if not replicate:  # a neighbour outside the frame counts as zero
                weight = weight * ((x >= 0) & (x < width) & (y >= 0) & (y < height))
            total += weight[..., None] * pixels[rows + x.clamp(0, width - 1)]
    out = (total + (1 << (2 * SUBPIXEL_BITS - 1))) >> (2 * SUBPIXEL_BITS)  # the weights sum to 32 x 32
    return out.reshape(len(index), size, size, -1).to(torch.float32)


def refine_with_heatmap(landmarks: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    """RefineLandmarksFromHeatmapCalculator for a batch: landmarks (R, 39, 5) with x, y in the crop's
    [0, 1], heatmap (R, 64, 64, 39) raw. Each landmark whose 9x9 neighbourhood (around its heatmap
    cell, the index truncated as C++ does) peaks at a confidence of 0.5 or more moves to the
    confidence-weighted mean of the neighbourhood's cells."""
    count, rows, cols, channels = heatmap.shape
    confidence = torch.sigmoid(heatmap.float())
    col = torch.trunc(landmarks[..., 0] * cols).long()
    row = torch.trunc(landmarks[..., 1] * rows).long()
    inside = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
    offsets = torch.arange(-(HEATMAP_KERNEL // 2), HEATMAP_KERNEL // 2 + 1, device=heatmap.device)
    window_rows = row[..., None, None] + offsets[:, None]  # (R, 39, 7, 1)
    window_cols = col[..., None, None] + offsets[None, :]  # (R, 39, 1, 7)
    valid = (window_rows >= 0) & (window_rows < rows) & (window_cols >= 0) & (window_cols < cols)
    r = torch.arange(count, device=heatmap.device)[:, None, None, None]
    k = torch.arange(channels, device=heatmap.device)[None, :, None, None]
    values = confidence[r, window_rows.clamp(0, rows - 1), window_cols.clamp(0, cols - 1), k] * valid
    total = values.sum(dim=(2, 3))
    peak = values.amax(dim=(2, 3))
    x = (values * window_cols).sum(dim=(2, 3)) / cols / total.clamp_min(1e-12)
    y = (values * window_rows).sum(dim=(2, 3)) / rows / total.clamp_min(1e-12)
    refine = inside & (peak >= REFINE_MIN_CONFIDENCE) & (total > 0)
    out = landmarks.clone()
    out[..., 0] = torch.where(refine, x, landmarks[..., 0])
    out[..., 1] = torch.where(refine, y, landmarks[..., 1])
    return out


def detector_stage(network: PoseNetwork, dtype: torch.dtype, frames: torch.Tensor, bgr: bool,
                   index: torch.Tensor, affine: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The detector on the letterboxed crops (see :func:`warp`) of ``frames``: its raw boxes and scores."""
    crops = warp(frames, index, affine, DETECTOR_SIZE, replicate=False)
    crops = crops.flip(-1) if bgr else crops  # the networks take RGB; flipped on the crops, a smaller copy
    return network((crops * (2.0 / 255.0) - 1.0).to(dtype))


def landmark_stage(network: PoseNetwork, dtype: torch.dtype, frames: torch.Tensor, bgr: bool,
                   index: torch.Tensor, affine: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The landmark network on the rotated crops of ``frames``: pose flags (R,) and landmarks (R, 39,
    5) (x, y in the crop's [0, 1], z in crop pixels over its size, visibility, presence), refined
    with the heatmap."""
    crops = warp(frames, index, affine, LANDMARK_SIZE, replicate=True)
    crops = crops.flip(-1) if bgr else crops
    raw, flag, heatmap = network((crops / 255.0).to(dtype))
    located = raw.float().reshape(len(index), 39, 5)
    located = torch.cat([located[..., :3] / LANDMARK_SIZE, torch.sigmoid(located[..., 3:])], dim=-1)
    return flag.float().reshape(-1), refine_with_heatmap(located, heatmap)


class BlazePoseNetworks:
    """The two networks on one device, and the batched stages around them (no per-camera state)."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 models: str | os.PathLike[str] | None = None, graphs: bool | None = None,
                 compiled: bool | None = None) -> None:
        """``models``: a folder of exported networks (:mod:`stgcn_rt.pose.runners`) to run instead of
        the wheel's in PyTorch; they run in their own precision (``dtype`` is then fp32, their input's).
        ``graphs``: on a GPU, run each stage (crops, PyTorch network, refinement) through CUDA graphs
        (False: eagerly; None: :data:`CUDA_GRAPHS`). Exported networks, and everything on the CPU,
        run eagerly (``self.graphs`` is then False). ``compiled``: compile the stages in CUDA graphs
        where Triton is installed (None: :data:`COMPILE`); ``self.compiled`` says whether they are."""
        self.device = torch.device(device)
        self.dtype = dtype if models is None else torch.float32
        self.graphs, self.compiled = stage_modes(self.device, models, graphs, compiled)
        self.detector, self.landmarker = (self._torch_network(role) if models is None else
                                          load_network(model_path(models, role, self.device), role, self.device)
                                          for role in ("detector", "landmarks"))
        # the frames are read in place (resident): the graphs are captured for each stream's buffer
        self._detector_stage = self.staged(functools.partial(detector_stage, self.detector, self.dtype), resident=1)
        self._landmark_stage = self.staged(functools.partial(landmark_stage, self.landmarker, self.dtype), resident=1)
        self._buffers: dict[int, torch.Tensor] = {}  # each CUDA stream's frames
        self.anchors = geometry.ssd_anchors()
        self.max_batch: int | None = None  # set when a batch ran out of device memory
        self._launching = threading.Lock()
        self._pinned: np.ndarray | None = None

    def staged(self, function: Callable[..., tuple[torch.Tensor, ...]], resident: int = 0) -> GraphedCall:
        """``function`` run as the stages are: compiled and through CUDA graphs, as these networks do
        (see :class:`~stgcn_rt.pose.graphs.GraphedCall` for ``resident``)."""
        return GraphedCall(CompiledCall(function) if self.compiled else function, self.graphs, resident)

    def _torch_network(self, role: str) -> PoseNetwork:
        """``role``'s network from the wheel; on a GPU in channels-last layout."""
        network = TfliteNetwork(model_file(role), OUTPUTS[role]).eval().to(self.device, self.dtype)
        return network.channels_last() if self.device.type == "cuda" else network

    def _run(self, stage: Callable[..., tuple[torch.Tensor, ...]], fixed: tuple[Any, ...],
             *rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``stage(*fixed, *rows)`` with ``rows`` (tensors of one length, a row an item) in chunks of
        at most ``max_batch`` items, on a GPU padded to its :func:`batch_bucket` with zero rows. A
        chunk that runs out of device memory is halved, for this call and every later one, rather
        than failing the cameras."""
        count = len(rows[0])
        if self.device.type == "cuda" and batch_bucket(count) > count:
            rows = tuple(torch.cat([row, row.new_zeros((batch_bucket(count) - count, *row.shape[1:]))])
                         for row in rows)
        total = len(rows[0])
        while True:
            size = min(total, self.max_batch or total)
            try:
                with self._inference():
                    parts = [stage(*fixed, *(row[i:i + size] for row in rows)) for i in range(0, total, size)]
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                self.max_batch = size // 2
                logging.getLogger("stgcn_rt").warning(
                    "BlazePose ran out of device memory at a batch of %d: running batches of %d", size, size // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            return tuple(torch.cat(outputs)[:count] for outputs in zip(*parts))

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """"fp32" means fp32: cuDNN would otherwise run the convolutions in TF32 on Ampere and newer.
        Its flags are the process's, not a thread's: threads that share the networks launch them one
        at a time (launching only; the device runs them after the lock is let go)."""
        with self._launching, torch.backends.cudnn.flags(enabled=True, allow_tf32=self.dtype != torch.float32):
            yield

    def pin(self, block: np.ndarray) -> bool:
        """Page-lock ``block`` (where frames are decoded, e.g. the decoders' shared slots) for the
        device's DMA, so that a frame in it reaches the GPU without a staging copy on the host; False
        where that is not possible (no CUDA device). :meth:`unpin` before ``block`` is freed."""
        if self.device.type != "cuda" or self._pinned is not None or not block.nbytes:
            return False
        if int(torch.cuda.cudart().cudaHostRegister(block.ctypes.data, block.nbytes, 0)) != 0:
            return False
        self._pinned = block
        return True

    def unpin(self) -> None:
        if self._pinned is not None:
            torch.cuda.cudart().cudaHostUnregister(self._pinned.ctypes.data)
            self._pinned = None

    def frames(self, images: list[np.ndarray]) -> torch.Tensor:
        """Camera images (H, W, 3) uint8, all of one size, as one batch on the device, channels as
        given. Each image is copied on its own: no host-side staging copy of the whole batch.

        On a GPU the batch is the current stream's frame buffer, which the next call on that stream
        overwrites (one thread a stream): it has at least as many rows as images, the rest stale. It
        stays in place while the images fit (the stages' CUDA graphs read it there), and grows to
        the next :func:`batch_bucket` when they do not (``warm_up`` sizes it for the cameras)."""
        if self.device.type == "cpu":
            return torch.from_numpy(np.stack(images))
        stream = torch.cuda.current_stream(self.device).cuda_stream
        batch = self._buffers.get(stream)
        if batch is None or batch.shape[1:] != images[0].shape or len(batch) < len(images):
            batch = self._buffers[stream] = torch.empty((batch_bucket(len(images)), *images[0].shape),
                                                        dtype=torch.uint8, device=self.device)
        for row, image in zip(batch, images):
            row.copy_(torch.from_numpy(image), non_blocking=True)
        return batch

    @torch.inference_mode()
    def detect(self, frames: torch.Tensor, which: list[int], bgr: bool = True,
               regions: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The detections of each frame in ``which``, after weighted NMS, in image coordinates:
        (scores (K,), boxes (K, 4), keypoints (K, 4, 2)), best first. ``bgr``: the frames are
        OpenCV's BGR (the networks take RGB). ``regions`` (len(which), 5): the unrotated part of each
        frame to look in (default: the whole frame, letterboxed as MediaPipe does)."""
        if not which:
            return []
        height, width = frames.shape[1:3]
        regions = np.repeat(WHOLE_FRAME[None], len(which), 0) if regions is None else regions
        maps = geometry.crop_affines(regions, width, height, DETECTOR_SIZE)
        raw, scores = (out.float().cpu().numpy() for out in self._run(
            self._detector_stage, (frames, bgr), torch.tensor(which, device=self.device),
            torch.from_numpy(maps).to(self.device)))
        found = []
        for i in range(len(which)):
            kept = geometry.weighted_nms(*geometry.decode_detections(raw[i], scores[i, :, 0], self.anchors))
            boxes = geometry.from_crop(kept[1].reshape(-1, 2, 2), maps[i], width, height, DETECTOR_SIZE)
            found.append((kept[0], boxes.reshape(-1, 4), geometry.from_crop(kept[2], maps[i], width, height,
                                                                              DETECTOR_SIZE)))
        return found

    @torch.inference_mode()
    def landmarks(self, frames: torch.Tensor, which: list[int], rois: np.ndarray,
                  bgr: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The landmark network on each region ``rois[r]`` (R, 5) of frame ``which[r]``: pose flags
        (R,) and landmarks (R, 39, 5) (x, y in the image's [0, 1], z, visibility, presence), refined
        with the heatmap and projected back to the image."""
        if not len(rois):
            return np.zeros(0, np.float32), np.zeros((0, 39, 5), np.float32)
        height, width = frames.shape[1:3]
        affine = torch.from_numpy(geometry.crop_affines(rois, width, height, LANDMARK_SIZE)).to(self.device)
        flags, points = (out.cpu().numpy() for out in self._run(
            self._landmark_stage, (frames, bgr), torch.tensor(which, device=self.device), affine))
        points[..., :2] = geometry.project(points[..., :2], rois)
        points[..., 2] *= rois[:, 2, None].astype(np.float32)
        return flags, points


class Tracks:
    """Every camera's pose state between frames, a row each: the next ROI (NaN where the next frame
    must detect) and the smoothing filters of its 33 landmarks and the two that place the ROI."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.roi = np.zeros((0, 5))
        self.frames = np.zeros(0, np.int64)
        self.filters = LandmarkFilters(np.array([LANDMARK_FILTER] * LANDMARKS + [AUXILIARY_FILTER] * 2))

    def rows_of(self, cameras: list[str]) -> np.ndarray:
        """The cameras' rows, a new one for a camera not seen before."""
        new = [camera for camera in dict.fromkeys(cameras) if camera not in self.rows]
        if new:
            for camera, row in zip(new, self.filters.add(len(new))):
                self.rows[camera] = int(row)
            self.roi = np.concatenate([self.roi, np.full((len(new), 5), np.nan)])
            self.frames = np.concatenate([self.frames, np.zeros(len(new), np.int64)])
        return np.array([self.rows[camera] for camera in cameras], np.int64)

    def lost(self, rows: np.ndarray) -> None:
        """No pose in these rows' frames: their next frames detect again and their filters start over."""
        self.roi[rows] = np.nan
        self.filters.reset(rows)

    def smooth(self, rows: np.ndarray, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """The frames' landmarks (R, 39, 5) smoothed as PoseLandmarkFiltering does; each row's next
        ROI from its smoothed auxiliary landmarks. Returns the 33 landmarks (R, 33, 3: x, y, visibility)."""
        auxiliary = points[:, LANDMARKS:LANDMARKS + 2, :2]
        scale = geometry.object_scales(auxiliary[:, 0], auxiliary[:, 1], width, height)
        smoothed = self.filters.apply(rows, points[:, :LANDMARKS + 2, :4], self.frames[rows] * FRAME_MICROSECONDS,
                                      width, height, scale)
        self.roi[rows] = geometry.alignment_rects(smoothed[:, LANDMARKS, :2], smoothed[:, LANDMARKS + 1, :2],
                                                  width, height)
        return smoothed[:, :LANDMARKS][..., [0, 1, 3]]


class BlazePose:
    """BlazePose for many cameras at once: ``process`` takes one frame from each of several cameras
    and returns each camera's 33 landmarks (x, y in [0, 1] of the frame, visibility), or None where
    nobody was found; ``process_persons`` returns ``persons`` slots a camera (MediaPipe's graph
    follows one person; several are this project's extension of it)."""

    def __init__(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 min_tracking_confidence: float = MIN_TRACKING_CONFIDENCE, persons: int = 1,
                 models: str | os.PathLike[str] | None = None, networks: BlazePoseNetworks | None = None,
                 graphs: bool | None = None, compiled: bool | None = None) -> None:
        """``networks``: another BlazePose's (see :meth:`sharing`), instead of loading them on ``device``;
        ``graphs``, ``compiled``: see :class:`BlazePoseNetworks`."""
        if persons < 1:
            raise StgcnError(f"persons must be 1 or more, got {persons}")
        self.persons = persons
        self.networks = networks or BlazePoseNetworks(device, dtype, models, graphs, compiled)
        self.min_tracking_confidence = min_tracking_confidence
        self.tracks = Tracks()

    def sharing(self) -> BlazePose:
        """Another BlazePose on the same networks (no second copy of their weights), with cameras of
        its own: for another thread, whose calls may overlap this one's (on a GPU, on a CUDA stream of its
        own: a stream's frames and graphs serve one call at a time)."""
        return BlazePose(min_tracking_confidence=self.min_tracking_confidence, persons=self.persons,
                         networks=self.networks)

    def warm_up(self, cameras: int = 1, width: int = 640, height: int = 480) -> None:
        """Both networks on a blank frame at every batch shape ``cameras`` can give them on a GPU
        (:func:`batch_bucket` up to one crop a slot for the landmark network, one a region looked in
        for the detector), at one crop on the CPU, so that the device's first-call costs (seconds on
        a GPU: its context, choosing kernels for each shape) come before the first camera's frame."""
        gpu = self.networks.device.type == "cuda"
        # on a GPU the stream's frame buffer for all the cameras: the graphs are captured for it
        frames = self.networks.frames([np.zeros((height, width, 3), np.uint8)] * (cameras if gpu else 1))
        regions = 1 if self.persons == 1 else 3  # the whole frame and its two halves
        for count in _warm_up_batches(cameras * regions, gpu):
            self.networks.detect(frames, [0] * count)
        for count in _warm_up_batches(cameras * self.persons, gpu):
            self.networks.landmarks(frames, [0] * count, np.tile([[0.5, 0.5, 0.5, 0.5, 0.0]], (count, 1)))

    def process(self, images: dict[str, np.ndarray], bgr: bool = True) -> dict[str, np.ndarray | None]:
        """Each camera's first person (33, 3), or None where nobody was found."""
        persons = self.process_persons(images, bgr)
        return {name: slots[0] if slots[0].any() else None for name, slots in persons.items()}

    def process_persons(self, images: dict[str, np.ndarray], bgr: bool = True) -> dict[str, np.ndarray]:
        """Each camera's ``persons`` slots (M, 33, 3), all zero where a slot holds nobody. A person
        keeps their slot while tracked; the detector looks for newcomers when a camera has a free slot
        (every frame while it tracks nobody, every DETECT_EVERY frames otherwise), a detection inside a
        tracked person's region being that person, and of two slots that pose one person the later is freed."""
        names = list(images)
        height, width = images[names[0]].shape[:2]
        frames = self.networks.frames([images[n] for n in names])
        tracks, m = self.tracks, self.persons
        rows = tracks.rows_of([_row_name(name, slot, m) for name in names for slot in range(m)]).reshape(-1, m)
        tracks.frames[rows] += 1
        free = np.isnan(tracks.roi[rows, 0])
        due = free.all(axis=1) | (free.any(axis=1) & (tracks.frames[rows[:, 0]] % DETECT_EVERY == 1))
        need = np.flatnonzero(due)
        for c, keypoints in zip(need, self._detections(frames, need, ~free[need].all(axis=1), bgr)):
            self._place(rows[c], keypoints, width, height)
        flat = rows.reshape(-1)
        which = np.flatnonzero(~np.isnan(tracks.roi[flat, 0]))
        flags, points = self.networks.landmarks(frames, (which // m).tolist(), tracks.roi[flat[which]], bgr)
        kept = flags >= self.min_tracking_confidence  # under it the pose is lost
        tracks.lost(flat[which[~kept]])
        smoothed = tracks.smooth(flat[which[kept]], points[kept], width, height)
        slots = np.zeros((len(names), m, LANDMARKS, 3), np.float32)
        slots.reshape(-1, LANDMARKS, 3)[which[kept]] = smoothed
        if m > 1:
            for c in range(len(names)):
                self._free_doubles(slots[c], rows[c], width, height)
        return dict(zip(names, slots))

    def _detections(self, frames: torch.Tensor, cameras: np.ndarray, tracking: np.ndarray,
                    bgr: bool) -> list[np.ndarray]:
        """The keypoints (K, 4, 2) of each camera's detections, best first. With several persons a
        camera, after the whole frame's, those of the frame's two square halves by score: MediaPipe's
        detector, made for one person, scores only the most prominent of several people over 0.5 on
        the whole frame, but finds each alone in the half where they stand. Not for a camera that
        tracks nobody (``tracking`` False) and whose whole frame shows nobody: it stays empty, as in
        MediaPipe's graph."""
        if self.persons == 1:
            return [keypoints for _, _, keypoints in self.networks.detect(frames, cameras.tolist(), bgr)]
        height, width = frames.shape[1:3]
        regions = np.concatenate([WHOLE_FRAME[None], geometry.square_halves(width, height)])
        found = self.networks.detect(frames, np.repeat(cameras, len(regions)).tolist(), bgr,
                                     np.tile(regions, (len(cameras), 1)))
        out = []
        for i in range(len(cameras)):
            (_, _, whole), *halves = found[i * len(regions):(i + 1) * len(regions)]
            scores = np.concatenate([np.zeros(0, np.float32), *(half[0] for half in halves)])
            points = np.concatenate([np.zeros((0, 4, 2), np.float32), *(half[2] for half in halves)])
            more = len(whole) or tracking[i]
            out.append(np.concatenate([whole, points[np.argsort(-scores, kind="stable")]]) if more else whole)
        return out

    def _place(self, rows: np.ndarray, keypoints: np.ndarray, width: int, height: int) -> None:
        """A camera's detections (best first; keypoints (K, 4, 2)) into its free slots ``rows``: the
        first detection alone with one slot (MediaPipe's graph); with several, each whose centre lies
        in no tracked person's region. A camera with no detection and no one tracked starts over."""
        tracks = self.tracks
        free = np.isnan(tracks.roi[rows, 0])
        if not len(keypoints):
            tracks.lost(rows[free])
            return
        taken = [tracks.roi[row] for row in rows[~free]]
        for roi in geometry.alignment_rects(keypoints[:, 0], keypoints[:, 1], width, height):
            if any(abs(roi[0] - t[0]) < t[2] / 2 and abs(roi[1] - t[1]) < t[3] / 2 for t in taken):
                continue  # someone already tracked
            slots = rows[np.isnan(tracks.roi[rows, 0])]
            if not len(slots):
                return
            tracks.roi[slots[0]] = roi
            taken.append(roi)

    def _free_doubles(self, slots: np.ndarray, rows: np.ndarray, width: int, height: int) -> None:
        """Issue 35's rule: one person never fills two slots; the later slot is freed (and its track)."""
        from stgcn_rt.pipeline.tracking import same_person

        kept: list[int] = []
        for slot in np.flatnonzero(slots.reshape(len(slots), -1).any(axis=1)):
            if any(same_person(slots[slot], slots[other], width, height) for other in kept):
                slots[slot] = 0.0
                self.tracks.lost(rows[slot:slot + 1])
            else:
                kept.append(int(slot))

    def forget(self, camera: str) -> None:
        """``camera``'s next frame detects afresh (its last frame's poses are unknown)."""
        names = (_row_name(camera, slot, self.persons) for slot in range(self.persons))
        known = [self.tracks.rows[name] for name in names if name in self.tracks.rows]
        self.tracks.lost(np.array(known, np.int64))


def _warm_up_batches(most: int, gpu: bool) -> list[int]:
    """The batches a network is warmed up at: every bucket up to ``most`` crops on a GPU, one crop on the CPU."""
    return sorted({batch_bucket(n) for n in range(1, most + 1)}) if gpu else [1]


def _row_name(camera: str, slot: int, persons: int) -> str:
    """A track's name: the camera's for one person a camera, with its slot for several."""
    return camera if persons == 1 else f"{camera}#{slot}"
