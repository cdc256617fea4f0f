"""The backends a benchmark run compares, each a small object that runs one batch end to end.

Every candidate takes a host numpy batch and returns host probabilities (the user-visible cost,
copies included); ``device_call`` is the same work with the input already resident and the output
left on the device, where that distinction exists (GPU backends).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.errors import one_line
from stgcn_rt.model.checkpoint import LoadedModel
from stgcn_rt.runtime.configurations import CONFIGURATIONS


@dataclass
class Candidate:
    name: str
    precision: str
    device: str
    call: Callable[[np.ndarray], np.ndarray]
    device_call: Callable[[Any], Any] | None = None
    to_device: Callable[[np.ndarray], Any] | None = None
    sync: Callable[[], None] = lambda: None
    batch_sizes: list[int] | None = None  # None: any
    baseline: bool = False
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def roadmap_eager(loaded: LoadedModel, device: str) -> Candidate:
    """The roadmap's baseline, timed as the roadmap times it: tensor from the host array, model, sync."""
    import torch

    model = copy.deepcopy(loaded.model).to(device).eval()  # the loaded model stays on the CPU for export
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def call(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.tensor(batch, dtype=torch.float32).to(device))
            probs = torch.softmax(out, dim=1).cpu().numpy()
        sync()
        return probs

    def device_call(x: Any) -> Any:
        with torch.no_grad():
            return torch.softmax(model(x), dim=1)

    return Candidate("pytorch eager (roadmap)", "fp32", device, call, device_call,
                     lambda b: torch.from_numpy(b).to(device), sync, baseline=True)


def torch_label(cuda_graphs: bool = False, compile: bool = False, optimize: bool = False,
                parallel_streams: bool = True, autotune: bool = False, kernels: bool = False,
                tma_loads: bool = True, fp8_temporal: bool = False, **_: Any) -> str:
    """How the benchmark names a configuration of the PyTorch runner (its keyword options)."""
    return ("pytorch" + (" kernels" if kernels else "")
            + (" (pointer loads)" if kernels and not tma_loads else "")
            + (" fp8 temporal" if fp8_temporal else "")
            + ((" optimized" + (" parallel" if parallel_streams else " serial")) if optimize else "")
            + (" + torch.compile" if compile else "") + (" (max-autotune)" if autotune else "")
            + (" + CUDA graphs" if cuda_graphs else ""))


def torch_candidate(loaded: LoadedModel, device: str, options: dict[str, Any]) -> Candidate:
    """The PyTorch runner with ``options``, timed through its public calls: ``predict`` with host
    windows, ``device_logits`` with windows already on the GPU."""
    import torch

    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

    classifier = TorchClassifier(loaded, device=device, **options)

    def device_call(x: Any) -> Any:
        return torch.softmax(classifier.device_logits(x).float(), dim=1)

    return Candidate(torch_label(**options), classifier.precision, device, classifier.predict, device_call,
                     classifier.to_device, torch.cuda.synchronize, closers=[classifier.close])


def _made_once(path: Path, make: Callable[[Path], Path]) -> Path:
    """``path``, made by ``make(path)`` unless an earlier candidate of this run made it: candidates
    that differ only in how they run one model file share the file."""
    return path if path.exists() else make(path)


def fp32_onnx(loaded: LoadedModel, persons: int, work: Path) -> Path:
    """The run's fp32 ONNX export (dynamic batch) in ``work``, exported once: the ONNX Runtime candidates
    and the CPU batching scheduler all run this file."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx

    return _made_once(work / "fp32.onnx", lambda out: export_onnx(
        loaded, out, ExportOptions(persons=persons, dynamic_batch=True), validate=False)[0])


def onnx_candidate(loaded: LoadedModel, persons: int, work: Path, threads: int | None,
                   calibration: np.ndarray | None, int8: dict[str, Any] | None, options: dict[str, Any]) -> Candidate:
    """ONNX Runtime on the CPU, on the run's fp32 export or, with ``int8`` (quantize_int8's options), its
    INT8 form in ONNX Runtime's layout; ``options``: the runner's (OnnxClassifier's keywords)."""
    from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier

    path = fp32_onnx(loaded, persons, work)
    if int8 is not None:
        from stgcn_rt.export.quantize import quantize_int8

        assert calibration is not None, "INT8 needs calibration windows"
        fp32 = path
        folded = int8.get("fold_batchnorms", True)
        path = _made_once(work / ("int8.onnx" if folded else "int8-bn.onnx"), lambda out: quantize_int8(
            fp32, out, calibration, "minmax", target="onnxruntime", **int8))
    classifier = OnnxClassifier(path, threads=threads, **options)
    routed = classifier.gemm_convolutions
    label = ", ".join([classifier.precision, *(["BatchNorm kept"] if int8 is not None and not folded else []),
                       *([f"{routed} convolutions by integer GEMM"] if routed else []),
                       *(["graph steps aggregate-first"] if classifier.steps_aggregated_first else []),
                       *(["graph steps channels-last"] if classifier.steps_channels_last else []),
                       *([f"batches {classifier.window_workers} windows at a time"]
                         if classifier.window_workers > 1 else [])])
    return Candidate("onnxruntime cpu", label, "cpu", classifier.predict, closers=[classifier.close])


def engine_candidate(engine: Path, options: dict[str, Any]) -> Candidate:
    from stgcn_rt.runtime.backends.tensorrt_runner import TensorRTClassifier

    classifier = TensorRTClassifier(engine, **options)
    return Candidate("tensorrt", classifier.precision, classifier.device, classifier.predict,
                     closers=[classifier.close], batch_sizes=None if classifier.batch_size is None
                     else [classifier.batch_size])


def server_candidate(url: str) -> Candidate:
    from stgcn_rt.runtime import load_classifier

    classifier = load_classifier(url)
    return Candidate("triton server", "server's", classifier.device, classifier.predict, closers=[classifier.close])


def makers(loaded: LoadedModel, persons: int, calibration: np.ndarray, work: Path, cuda: bool,
           engine: Path | None = None, threads: int | None = None, server: str | None = None
           ) -> dict[str, Callable[[], Candidate]]:
    """What builds each candidate that can run here, by its name in the table of
    :data:`~stgcn_rt.runtime.configurations.CONFIGURATIONS`."""
    device = "cuda" if cuda else "cpu"
    found: dict[str, Callable[[], Candidate]] = {}
    for c in CONFIGURATIONS:
        if c.gpu and not cuda:
            continue
        if c.backend == "roadmap":
            found[c.name] = functools.partial(roadmap_eager, loaded, device)
        elif c.backend == "pytorch":
            found[c.name] = functools.partial(torch_candidate, loaded, device, c.options)
        elif c.backend == "onnxruntime":
            found[c.name] = functools.partial(onnx_candidate, loaded, persons, work, threads, calibration, c.int8,
                                              c.options)
        elif c.backend == "tensorrt" and engine is not None:
            found[c.name] = functools.partial(engine_candidate, engine, c.options)
        elif c.backend == "triton" and server is not None:
            found[c.name] = functools.partial(server_candidate, server)
    return found


def available(loaded: LoadedModel, persons: int, names: list[str] | None, calibration: np.ndarray, work: Path,
              engine: Path | None = None, threads: int | None = None, server: str | None = None
              ) -> tuple[list[Candidate], list[str]]:
    """Every candidate this machine can run (filtered by ``names``), and why others were skipped; the
    files they run are made in ``work``."""
    import torch

    cuda = torch.cuda.is_available()
    skipped = []
    if not cuda:
        skipped.append("fp16, graphs, compile, optimized and GPU-kernel variants: no CUDA GPU")
    if engine is None:
        trt = importlib.util.find_spec("tensorrt") is not None
        skipped.append("tensorrt: " + ("give --engine FILE.engine" if trt else "TensorRT is not installed"))
    chosen = []
    for name, make in makers(loaded, persons, calibration, work, cuda, engine, threads, server).items():
        if names and name not in names:
            continue
        try:
            chosen.append(make())
        except Exception as exc:  # a backend that cannot start here is reported, not fatal
            skipped.append(f"{name}: {one_line(exc)}")
    return chosen, skipped
