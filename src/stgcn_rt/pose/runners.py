"""BlazePose's networks from exported files (``stgcn-rt export-pose`` writes the ONNX, ``stgcn-rt
build`` makes TensorRT engines of them), run by ONNX Runtime or TensorRT behind the call a PyTorch
network answers: crops (N, H, W, 3) on the device in, the file's outputs as tensors on the same
device out, in the file's order. So a Jetson runs pose in TensorRT as it runs ST-GCN.

A folder of pose models holds each network under its .tflite file's name with its format's suffix
(``pose_detection.engine``, ``pose_landmark_full.onnx``, ...); on a GPU an engine is taken before an
ONNX file of the same network.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.pose.geometry import DETECTOR_SIZE, LANDMARK_SIZE
from stgcn_rt.pose.models import MODEL_FILES, OUTPUTS
from stgcn_rt.window import static_chunks

#: per role: the file's name without its suffix, its input's side and how many outputs it gives
ROLES = {"detector": (Path(MODEL_FILES["detector"]).stem, DETECTOR_SIZE, len(OUTPUTS["detector"])),
         "landmarks": (Path(MODEL_FILES["landmarks"]).stem, LANDMARK_SIZE, len(OUTPUTS["landmarks"]))}
#: the formats a pose network is read from, in the order they are looked for on a GPU
GPU_SUFFIXES = (".engine", ".plan", ".onnx")
CPU_SUFFIXES = (".onnx",)


class PoseNetwork(Protocol):
    """What BlazePose calls: a batch of crops in, the network's outputs out."""

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


def model_path(folder: str | os.PathLike[str], role: str, device: torch.device) -> Path:
    """The file of ``role`` in ``folder`` to run on ``device``; one line where there is none."""
    stem = ROLES[role][0]
    suffixes = CPU_SUFFIXES if device.type == "cpu" else GPU_SUFFIXES
    for suffix in suffixes:
        path = Path(folder) / f"{stem}{suffix}"
        if path.is_file():
            return path
    engines = "" if device.type == "cpu" else " (or a TensorRT engine of it built with stgcn-rt build)"
    if not Path(folder).is_dir():
        raise StgcnError(f"pose models: {folder} is not a folder: write one with stgcn-rt export-pose -o {folder}")
    raise StgcnError(f"pose models: {folder} has no {stem}.onnx{engines}: write it with stgcn-rt export-pose "
                     f"-o {folder}")


def load_network(path: Path, role: str, device: torch.device) -> PoseNetwork:
    """The network in ``path`` (ONNX or TensorRT by its suffix), checked to be ``role``'s."""
    network: FileNetwork = (OnnxNetwork(path, device) if path.suffix == ".onnx" else EngineNetwork(path, device))
    _stem, size, outputs = ROLES[role]
    if network.input_shape[1:] != (size, size, 3) or network.outputs != outputs:
        raise StgcnError(f"pose models: {path} takes {network.input_shape} and gives {network.outputs} outputs, "
                         f"not the {role} network's (N, {size}, {size}, 3) and {outputs}: export it again with "
                         "stgcn-rt export-pose")
    return network


class FileNetwork(ABC):
    """A network file's runner: more crops than its batch takes run in chunks (a static batch's last
    chunk padded)."""

    input_shape: tuple[int | None, ...]  # (N, H, W, 3), N None where the batch is dynamic
    outputs: int
    max_batch: int | None = None  # the most a dynamic batch takes (an engine's profile); None: any

    def __call__(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch, size = self.input_shape[0], self.max_batch or len(crops)
        if len(crops) == batch or (batch is None and len(crops) <= size):
            return self._run(crops)
        chunks = (static_chunks(crops, batch) if batch
                  else [(crops[i:i + size], size) for i in range(0, len(crops), size)])
        parts = [tuple(out[:count] for out in self._run(chunk)) for chunk, count in chunks]
        return tuple(torch.cat(outputs) for outputs in zip(*parts))

    @abstractmethod
    def _run(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One batch the file takes."""


class OnnxNetwork(FileNetwork):
    """An exported network in ONNX Runtime (its CUDA provider on a GPU, where installed)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime as ort

        from stgcn_rt.runtime.backends.onnxruntime_runner import providers_for, session_options

        try:
            self.session = ort.InferenceSession(str(path), session_options(ort, None),
                                                providers=providers_for(ort, str(device)))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise StgcnError(f"ONNX Runtime cannot open {path}: {first_line(exc)[:300]}") from exc
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in model_input.shape)
        self.outputs = len(self.session.get_outputs())

    def _run(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        host = np.ascontiguousarray(crops.detach().float().cpu().numpy())
        return tuple(torch.from_numpy(out).to(crops.device) for out in self.session.run(None, {self.input_name: host}))


class EngineNetwork(FileNetwork):
    """A TensorRT engine of an exported network, enqueued on PyTorch's current stream, so that it runs
    in order with the crops made before it and the steps after it."""

    def __init__(self, path: Path, device: torch.device) -> None:
        from stgcn_rt.runtime.backends.tensorrt_runner import Engine

        self.engine = Engine(path, str(device))
        if len(self.engine.inputs) != 1:
            raise StgcnError(f"{path.name} has inputs {self.engine.inputs}; a pose network has one")
        self.input_name = self.engine.inputs[0]
        self.input_shape = self.engine.shape(self.input_name)
        self.max_batch = self.engine.max_batch(self.input_name)
        self.outputs = len(self.engine.outputs)

    def _run(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        engine = self.engine
        crops = crops.to(engine.device, engine.dtype(self.input_name)).contiguous()
        engine.set_inputs({self.input_name: crops})
        outputs = {name: torch.empty(engine.output_shape(name), dtype=engine.dtype(name), device=engine.device)
                   for name in engine.outputs}
        engine.run(outputs, torch.cuda.current_stream(engine.device).cuda_stream)
        return tuple(outputs.values())
