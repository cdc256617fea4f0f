"""TensorRT runner without pycuda: PyTorch owns the CUDA context, the stream and the memory.

Input and output live in torch tensors; their ``data_ptr()`` go to ``set_tensor_address`` and the
engine runs with ``execute_async_v3`` on this classifier's own stream (one execution context per
stream: for concurrent streams, open one classifier per stream). Optionally each batch shape's
enqueue is captured once in a CUDA graph and replayed. Before deserialising, the engine's
``.json`` sidecar is checked against the running TensorRT and GPU: engines are not portable, and
a mismatch says so and how to rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stgcn_rt.artefact import ModelMetadata, read_sidecar
from stgcn_rt.errors import StgcnError
from stgcn_rt.export import trt_compat
from stgcn_rt.runtime.classifier import Classifier

if TYPE_CHECKING:
    import tensorrt
    import torch


def check_sidecar(engine: Path, sidecar: dict, tensorrt_version: str, gpu: str, capability: str) -> None:
    """Refuse an engine built by another TensorRT or for another GPU, with one line saying which."""
    built = sidecar.get("tensorrt_version")
    rebuild = f"rebuild it here: stgcn-rt build {sidecar.get('onnx', 'model.onnx')} -o {engine.name}"
    if built != tensorrt_version:
        raise StgcnError(f"{engine.name} was built with {sidecar.get('tensorrt', 'TensorRT')} {built}, "
                         f"this machine has {tensorrt_version}: {rebuild}")
    wanted = str(sidecar.get("compute_capability", "unknown")).replace(".", "")
    if wanted not in ("unknown", capability.replace(".", "")):
        raise StgcnError(f"{engine.name} was built for compute capability {sidecar['compute_capability']} "
                         f"({sidecar.get('gpu')}), this GPU is {gpu} ({capability}): {rebuild}")


class Engine:
    """A deserialised TensorRT engine on one CUDA device, with its execution context: the loading and
    the checks every engine gets (its sidecar against this TensorRT and GPU), for the classifier's
    runner and the pose networks' alike. ``run`` enqueues it on a given stream."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cuda") -> None:
        self.path = Path(path)
        self.sidecar = read_sidecar(self.path) or {}
        trt = trt_compat.import_tensorrt("rtx" if self.sidecar.get("tensorrt") == "tensorrt_rtx" else "tensorrt")
        import torch

        if not torch.cuda.is_available():
            raise StgcnError(f"TensorRT engines run on a CUDA GPU and PyTorch sees none: use {self.path.stem}.onnx "
                             "with the ONNX Runtime backend on this machine")
        self.device = torch.device(device if device.startswith("cuda") else "cuda")
        torch.cuda.set_device(self.device)
        major, minor = torch.cuda.get_device_capability(self.device)
        if self.sidecar:
            check_sidecar(self.path, self.sidecar, trt.__version__, torch.cuda.get_device_name(self.device),
                          f"{major}.{minor}")
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime: tensorrt.Runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise StgcnError(f"TensorRT {trt.__version__} could not load {self.path} (another TensorRT "
                             "version, another GPU, or not an engine): rebuild it with stgcn-rt build")
        self.engine: tensorrt.ICudaEngine = engine
        self.context: tensorrt.IExecutionContext = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dynamic = {n for n in self.inputs if None in self.shape(n)}  # inputs whose shape is set per call

    def shape(self, name: str) -> tuple[int | None, ...]:
        """A tensor's shape as built, None for a dynamic axis."""
        dims = self.engine.get_tensor_shape(name)
        return tuple(None if dims[i] < 0 else int(dims[i]) for i in range(len(dims)))

    def max_batch(self, name: str) -> int | None:
        """The largest batch the engine's (first) optimisation profile takes for input ``name``; None
        for a static batch."""
        if self.shape(name)[0] is not None:
            return None
        return int(self.engine.get_tensor_profile_shape(name, 0)[2][0])

    def dtype(self, name: str) -> torch.dtype:
        import torch

        kinds = {self._trt.DataType.HALF: torch.float16, self._trt.DataType.INT32: torch.int32}
        return kinds.get(self.engine.get_tensor_dtype(name), torch.float32)

    def output_shape(self, name: str) -> tuple[int, ...]:
        """An output's shape for the input shapes set last (:meth:`set_inputs`)."""
        dims = self.context.get_tensor_shape(name)
        return tuple(int(dims[i]) for i in range(len(dims)))

    def set_inputs(self, tensors: dict[str, torch.Tensor]) -> None:
        """Bind the inputs (their shapes where the engine's are dynamic)."""
        for name, tensor in tensors.items():
            if name in self._dynamic:
                self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())

    def run(self, outputs: dict[str, torch.Tensor], stream: int) -> None:
        """Enqueue the engine on ``stream`` (a CUDA stream handle) with the inputs bound last, into ``outputs``."""
        for name, tensor in outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        if not self.context.execute_async_v3(stream):
            raise StgcnError(f"TensorRT failed to run {self.path.name}")

    def close(self) -> None:
        for attribute in ("context", "engine", "_runtime"):
            if hasattr(self, attribute):
                delattr(self, attribute)


class TensorRTClassifier(Classifier):
    name = "TensorRT"

    def __init__(self, path: str | os.PathLike[str], device: str = "cuda", precision: str | None = None,
                 *, cuda_graphs: bool = False, **_: Any) -> None:
        import torch

        self._trt_engine = Engine(path, device)
        self.path, sidecar, self._device = self._trt_engine.path, self._trt_engine.sidecar, self._trt_engine.device
        if precision is not None and sidecar.get("precision") not in (None, precision):
            raise StgcnError(f"{self.path.name} is a {sidecar['precision']} engine, not {precision}")
        self._torch = torch
        self.device = str(self._device)
        facts = ModelMetadata.from_sidecar(sidecar)
        self.precision, self.untrained = facts.precision, facts.untrained
        inputs, outputs = self._trt_engine.inputs, self._trt_engine.outputs
        if len(inputs) != 1 or not outputs:
            raise StgcnError(f"{self.path.name} has inputs {inputs} and outputs {outputs}; expected one input "
                             "and the logits output")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.input_shape = self._trt_engine.shape(self.input_name)
        self._input_dtype = self._trt_engine.dtype(self.input_name)
        self.classes = facts.class_names(int(self._trt_engine.shape(self.output_name)[-1] or 0))
        self._stream: torch.cuda.Stream = torch.cuda.Stream(self._device)
        self.cuda_graphs = cuda_graphs
        self._buffers: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, Any]] = {}
        from stgcn_rt.runtime.cuda_graphs import PinnedStaging

        self._pinned = PinnedStaging()

    def _release(self) -> None:
        self._buffers.clear()
        self._pinned.clear()
        if hasattr(self, "_trt_engine"):
            self._trt_engine.close()

    def _buffers_for(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Device input/output tensors for one batch shape (and its captured CUDA graph)."""
        if shape not in self._buffers:
            torch = self._torch
            x = torch.empty(shape, dtype=self._input_dtype, device=self._device)
            out = torch.empty((shape[0], len(self.classes)), dtype=torch.float32, device=self._device)
            self._buffers[shape] = (x, out, None)
        return self._buffers[shape]

    def _enqueue(self, x: torch.Tensor, out: torch.Tensor) -> None:
        self._trt_engine.set_inputs({self.input_name: x})
        self._trt_engine.run({self.output_name: out}, self._stream.cuda_stream)

    def _logits(self, windows: Any) -> np.ndarray:
        torch = self._torch
        shape = tuple(windows.shape)
        x, out, graph = self._buffers_for(shape)
        with torch.cuda.stream(self._stream):
            if isinstance(windows, np.ndarray):
                x.copy_(self._pinned.stage(windows), non_blocking=True)
            else:
                x.copy_(windows.to(self._device), non_blocking=True)
            if not self.cuda_graphs:
                self._enqueue(x, out)
            elif graph is None:
                self._enqueue(x, out)  # TensorRT needs one plain run before capture
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._stream):
                    self._enqueue(x, out)
                self._buffers[shape] = (x, out, graph)
                graph.replay()
            else:
                graph.replay()
            result = out.to("cpu", non_blocking=False)
        return result.numpy()
