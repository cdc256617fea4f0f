"""The backends a benchmark run compares, each a small object that runs one batch end to end.

Every candidate takes a host numpy batch and returns host probabilities (the user-visible cost,
copies included); ``device_call`` is the same work with the input already resident and the output
left on the device, where that distinction exists (GPU backends).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.errors import first_line
from stgcn_rt.model.checkpoint import LoadedModel


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
                parallel_streams: bool = True, autotune: bool = False, triton_kernels: bool = False,
                tma_loads: bool = True, fp8_temporal: bool = False, **_: Any) -> str:
    """How the benchmark names a configuration of the PyTorch runner (its keyword options)."""
    return ("pytorch" + (" triton kernels" if triton_kernels else "")
            + (" (pointer loads)" if triton_kernels and not tma_loads else "")
            + (" fp8 temporal" if fp8_temporal else "")
            + ((" optimized" + (" parallel" if parallel_streams else " serial")) if optimize else "")
            + (" + torch.compile" if compile else "") + (" (max-autotune)" if autotune else "")
            + (" + CUDA graphs" if cuda_graphs else ""))


def torch_candidate(loaded: LoadedModel, device: str, precision: str, graphs: bool, compile: bool,
                    optimize: bool = False, parallel: bool = True, autotune: bool = False,
                    triton_kernels: bool = False, tma_loads: bool = True, fp8_temporal: bool = False) -> Candidate:
    import torch

    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

    options: dict[str, Any] = dict(cuda_graphs=graphs, compile=compile, optimize=optimize, parallel_streams=parallel,
                                   autotune=autotune, triton_kernels=triton_kernels, tma_loads=tma_loads,
                                   fp8_temporal=fp8_temporal)
    classifier = TorchClassifier(loaded, device=device, precision=precision, **options)
    label = torch_label(**options)

    def device_call(x: Any) -> Any:
        with torch.inference_mode():
            out = classifier._replay(x) if graphs else classifier.model(x)
            return torch.softmax(out.float(), dim=1)

    return Candidate(label, precision, device, classifier.predict, device_call,
                     lambda b: torch.from_numpy(b).to(device, classifier.dtype), torch.cuda.synchronize,
                     closers=[classifier.close])


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


def onnx_candidate(loaded: LoadedModel, persons: int, precision: str, work: Path, threads: int | None,
                   calibration: np.ndarray | None, fold_batchnorms: bool = True,
                   integer_gemm: bool | None = None, aggregate_first: bool = True,
                   channels_last_steps: bool = True, parallel_windows: bool = True) -> Candidate:
    """ONNX Runtime on the CPU; INT8 in ONNX Runtime's form, with the graph steps' BatchNorms folded
    unless ``fold_batchnorms`` is False (the form before the fold), and the wide temporal
    convolutions on the integer GEMM as the runner decides unless ``integer_gemm`` says; float
    graph steps aggregate-first unless ``aggregate_first`` is False (the export's form), quantized ones
    channels-last unless ``channels_last_steps`` is False; a batch's windows across the cores unless
    ``parallel_windows`` is False (the whole batch in one run)."""
    from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier

    path = fp32_onnx(loaded, persons, work)
    if precision == "int8":
        from stgcn_rt.export.quantize import quantize_int8

        assert calibration is not None, "INT8 needs calibration windows"
        fp32 = path
        path = _made_once(work / ("int8.onnx" if fold_batchnorms else "int8-bn.onnx"), lambda out: quantize_int8(
            fp32, out, calibration, "minmax", target="onnxruntime", fold_batchnorms=fold_batchnorms))
    classifier = OnnxClassifier(path, threads=threads, integer_gemm=integer_gemm, aggregate_first=aggregate_first,
                                channels_last_steps=channels_last_steps, parallel_windows=parallel_windows)
    routed = classifier.gemm_convolutions
    label = ", ".join([precision, *(["BatchNorm kept"] if not fold_batchnorms else []),
                       *([f"{routed} convolutions by integer GEMM"] if routed else []),
                       *(["graph steps aggregate-first"] if classifier.steps_aggregated_first else []),
                       *(["graph steps channels-last"] if classifier.steps_channels_last else []),
                       *([f"batches {classifier.window_workers} windows at a time"]
                         if classifier.window_workers > 1 else [])])
    return Candidate("onnxruntime cpu", label, "cpu", classifier.predict, closers=[classifier.close])


def engine_candidate(engine: Path) -> Candidate:
    from stgcn_rt.runtime.backends.tensorrt_runner import TensorRTClassifier

    classifier = TensorRTClassifier(engine, cuda_graphs=True)
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
    """What builds each candidate that can run here, by its name in :data:`BACKEND_NAMES`."""
    device = "cuda" if cuda else "cpu"
    found: dict[str, Callable[[], Candidate]] = {"eager": lambda: roadmap_eager(loaded, device)}
    if cuda:
        found.update({
            "fp16": lambda: torch_candidate(loaded, "cuda", "fp16", False, False),
            "graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, False),
            "compile": lambda: torch_candidate(loaded, "cuda", "fp16", False, True),
            "compile-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, True),
            "optimized-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, False, optimize=True),
            "optimized-serial-compile-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, True,
                                                                       optimize=True, parallel=False),
            "optimized-compile-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, True, optimize=True),
            "optimized-autotune-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, True, optimize=True,
                                                                 autotune=True),
            "triton-kernels-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, False,
                                                             triton_kernels=True),
            "triton-kernels-pointer-loads-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, False,
                                                                           triton_kernels=True, tma_loads=False),
            "triton-kernels-fp8-graphs": lambda: torch_candidate(loaded, "cuda", "fp16", True, False,
                                                                 triton_kernels=True, fp8_temporal=True),
        })
    found.update({
        "onnxruntime": lambda: onnx_candidate(loaded, persons, "fp32", work, threads, None),
        "onnxruntime-as-exported": lambda: onnx_candidate(loaded, persons, "fp32", work, threads, None,
                                                          aggregate_first=False),
        "onnxruntime-one-session": lambda: onnx_candidate(loaded, persons, "fp32", work, threads, None,
                                                          parallel_windows=False),
        "onnxruntime-int8": lambda: onnx_candidate(loaded, persons, "int8", work, threads, calibration),
        "onnxruntime-int8-bn": lambda: onnx_candidate(loaded, persons, "int8", work, threads, calibration,
                                                      fold_batchnorms=False),
        "onnxruntime-int8-symmetric": lambda: onnx_candidate(loaded, persons, "int8", work, threads, calibration,
                                                             integer_gemm=False),
        "onnxruntime-int8-nchw-steps": lambda: onnx_candidate(loaded, persons, "int8", work, threads, calibration,
                                                              channels_last_steps=False),
    })
    if engine is not None:
        found["tensorrt"] = lambda: engine_candidate(engine)
    if server is not None:
        found["triton"] = lambda: server_candidate(server)
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
        skipped.append("fp16, graphs, compile, optimized and Triton-kernel variants: no CUDA GPU")
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
            skipped.append(f"{name}: {type(exc).__name__}: {first_line(exc)}")
    return chosen, skipped
