"""Every difference between the TensorRT versions stgcn-rt supports, in one place.

- TensorRT 10.x (x86, JetPack 6.1+): explicit batch is implicit, precision flags exist, the implicit
  INT8 calibrators are deprecated but present, ``IProgressMonitor`` reports build progress.
- TensorRT 8.5/8.6 (JetPack 5.1, JetPack 6.0): networks need the EXPLICIT_BATCH flag; the
  tensor-name API (``set_tensor_address``, ``execute_async_v3``) already exists; no progress monitor.
- TensorRT-RTX (``tensorrt_rtx``, pip): strongly typed only (no FP16/INT8 flags: precision comes
  from the ONNX), builds ahead of time for a named compute capability, even without a GPU.

Older TensorRT (< 8.5) lacks the tensor-name API and is refused with one clear line.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from stgcn_rt.errors import StgcnError

MIN_VERSION = (8, 5)


def import_tensorrt(flavour: str = "auto") -> ModuleType:
    """``tensorrt`` (or, with flavour "rtx" or when it is absent, ``tensorrt_rtx``)."""
    names = {"auto": ["tensorrt", "tensorrt_rtx"], "tensorrt": ["tensorrt"], "rtx": ["tensorrt_rtx"]}[flavour]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if not hasattr(module, "Builder"):  # e.g. the folder tensorrt-stubs installs, without TensorRT
            continue
        if not is_rtx(module) and version(module) < MIN_VERSION:
            raise StgcnError(f"TensorRT {module.__version__} is too old: stgcn-rt needs 8.5 or newer "
                             "(JetPack 5.1+)")
        return module
    hint = ("pip install tensorrt-rtx" if flavour == "rtx" else
            "on Jetson it comes with JetPack (python3-libnvinfer); on x86 pip install tensorrt")
    raise StgcnError(f"TensorRT is not installed ({' / '.join(names)} not importable): {hint}")


def is_rtx(trt: ModuleType) -> bool:
    return trt.__name__.startswith("tensorrt_rtx")


def version(trt: ModuleType) -> tuple[int, ...]:
    return tuple(int(p) for p in trt.__version__.split(".")[:3] if p.isdigit())


def network_flags(trt: ModuleType) -> int:
    """EXPLICIT_BATCH must be asked for before TensorRT 10; from 10 on it is the only mode."""
    if not is_rtx(trt) and version(trt) < (10,):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def has_precision_flags(trt: ModuleType) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


def has_implicit_int8(trt: ModuleType) -> bool:
    return hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(trt.BuilderFlag, "INT8")


def set_workspace(trt: ModuleType, config: Any, workspace: int) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)


def attach_progress(trt: ModuleType, config: Any, report: Any) -> None:
    """Report build phases through ``report(text)`` where TensorRT can (10.x, RTX; not 8.5/8.6)."""
    if not hasattr(trt, "IProgressMonitor"):
        return

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                report(f"      {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    config.progress_monitor = Monitor()


def set_target(trt: ModuleType, config: Any, compute_capability: str | None) -> str | None:
    """TensorRT-RTX builds for a named compute capability ("sm86"), or the current GPU ("current")."""
    if not is_rtx(trt):
        if compute_capability:
            raise StgcnError("--compute-capability is for TensorRT-RTX ahead-of-time builds; TensorRT "
                             "builds for the GPU it runs on")
        return None
    wanted = (compute_capability or "current").upper().replace("_", "")
    if not hasattr(trt.ComputeCapability, wanted):
        choices = [c.lower() for c in dir(trt.ComputeCapability) if c.startswith("SM") or c == "CURRENT"]
        raise StgcnError(f"TensorRT-RTX cannot target {compute_capability}: choose one of {', '.join(choices)}")
    config.num_compute_capabilities = 1
    config.set_compute_capability(getattr(trt.ComputeCapability, wanted), 0)
    return wanted.lower()
