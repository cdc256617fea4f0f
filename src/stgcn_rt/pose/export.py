"""BlazePose's two networks as ONNX files, for TensorRT (a Jetson's) or ONNX Runtime.

Each network is exported from its PyTorch form (:mod:`stgcn_rt.pose.tflite_graph`), with the
tflite file's input layout (N, H, W, 3) and the outputs BlazePose reads (``models.OUTPUTS``, under
the file's names: the landmark network without its segmentation mask and world landmarks), and is
validated against PyTorch with ONNX Runtime on random crops before it is renamed into place: a file
that differs is not written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stgcn_rt import __version__
from stgcn_rt.errors import StgcnError, first_line, require
from stgcn_rt.export.onnx_export import EXPORTER_LOGGERS, export_graph
from stgcn_rt.files import atomic_output, sha256_of
from stgcn_rt.onnx.tidy import fold_constants_and_identities
from stgcn_rt.pose.geometry import DETECTOR_SIZE, LANDMARK_SIZE
from stgcn_rt.pose.models import OUTPUTS, model_file
from stgcn_rt.pose.tflite_graph import TfliteNetwork
from stgcn_rt.quiet import library_messages_hidden

#: the networks by role: input size and the range the graph feeds them ([-1, 1] letterbox, [0, 1] crop)
NETWORKS = {"detector": (DETECTOR_SIZE, (-1.0, 1.0)), "landmarks": (LANDMARK_SIZE, (0.0, 1.0))}
#: the largest |ONNX - PyTorch| of an output allowed, relative to the output's largest magnitude (at least 1):
#: landmarks are pixels of the crop (up to 256), heatmap logits reach the hundreds
TOLERANCE = 1e-3
OPSET = 17


@dataclass
class PoseExport:
    """One exported network and how it compared with PyTorch."""

    role: str
    path: Path
    batch: int | None  # None: dynamic
    max_diff: float  # the largest relative difference of any output (see TOLERANCE)

    def line(self) -> str:
        batch = "dynamic batch" if self.batch is None else f"batch {self.batch}"
        return f"{self.path} ({self.role}, {batch}): outputs within {self.max_diff:.1e} of PyTorch's on the demo clip"


def export_pose(folder: str | os.PathLike[str], batch: int | None = None, opset: int = OPSET,
                report: Callable[[str], None] = lambda text: None) -> list[PoseExport]:
    """Both networks into ``folder``, named after their .tflite files: a dynamic batch axis, or a
    static ``batch``."""
    if batch is not None and batch < 1:
        raise StgcnError(f"--batch must be 1 or more, got {batch}")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise StgcnError(f"{out} is a file: give a folder for the pose models")
    out.mkdir(parents=True, exist_ok=True)
    exports = []
    for role, (size, (low, high)) in NETWORKS.items():
        source = model_file(role)
        path = out / f"{source.stem}.onnx"
        report(f"exporting {source.name} -> {path}, then comparing it with PyTorch")
        network = TfliteNetwork(source, OUTPUTS[role]).eval()
        with atomic_output(path) as tmp:
            _export(network, source, tmp, size, batch, opset)
            diff = _compare(network, tmp, low + (high - low) * _clip_crops(batch or 3, size))
            if not diff <= TOLERANCE:
                raise StgcnError(f"validation failed, {path} not written: an output differs from PyTorch's by "
                                 f"{diff:.1e} of its range (at most {TOLERANCE:g})")
        exports.append(PoseExport(role, path, batch, diff))
    return exports


def _clip_crops(count: int, size: int) -> np.ndarray:
    """``count`` frames spread over the shipped clip, RGB, resized to ``size`` square, in [0, 1]."""
    from stgcn_rt.data import demo_video
    from stgcn_rt.pipeline.sources import video_frames

    cv2 = require("cv2", "pipeline", "Validating the pose models")
    frames = list(video_frames(demo_video()))
    picked = [frames[i * len(frames) // count] for i in range(count)]
    return np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (size, size)) for f in picked]).astype(
        np.float32) / 255.0


def _export(network: TfliteNetwork, source: Path, path: Path, size: int, batch: int | None, opset: int) -> None:
    import onnx

    example = torch.rand(batch or 2, size, size, 3)  # a batch of 1 would let the tracer fix it
    with tempfile.TemporaryDirectory(prefix="stgcn-rt-pose-") as work:
        raw = Path(work) / "model.onnx"
        with library_messages_hidden(EXPORTER_LOGGERS), torch.no_grad():
            try:
                export_graph(network, example, raw, "image", network.output_names, opset, batch is None)
            except Exception as exc:  # the exporters raise many types; report one line
                raise StgcnError(f"ONNX export of {source.name} failed: {first_line(exc)[:300]} "
                                 "(rerun with --debug for details)") from exc
        model = onnx.load(str(raw))
    fold_constants_and_identities(model)
    del model.metadata_props[:]
    for key, value in {"stgcn_rt.pose_network": source.stem, "stgcn_rt.tflite_sha256": sha256_of(source)}.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "stgcn-rt", __version__
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _compare(network: TfliteNetwork, path: Path, crops: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: crops})
    with torch.inference_mode():
        expected = [t.numpy() for t in network(torch.from_numpy(crops))]
    if [g.shape for g in got] != [e.shape for e in expected]:
        return float("inf")
    return max(float(np.abs(g - e).max()) / max(1.0, float(np.abs(e).max())) for g, e in zip(got, expected))
