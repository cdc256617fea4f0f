"""Names of the benchmark's backends, importable without torch (the CLI's choices)."""

from __future__ import annotations

from typing import Any

from stgcn_rt.runtime.modes import FAST_MODES, FP16_GRAPHS

BACKEND_NAMES = ("eager", "fp16", "graphs", "compile", "compile-graphs", "optimized-graphs",
                 "optimized-serial-compile-graphs", "optimized-compile-graphs", "optimized-autotune-graphs",
                 "triton-kernels-graphs", "triton-kernels-pointer-loads-graphs", "triton-kernels-fp8-graphs",
                 "onnxruntime", "onnxruntime-as-exported", "onnxruntime-one-session",
                 "onnxruntime-int8", "onnxruntime-int8-bn", "onnxruntime-int8-symmetric",
                 "onnxruntime-int8-nchw-steps", "tensorrt", "triton")

#: what the batching scheduler of the camera test may run on a GPU: the PyTorch runner's options
SCHEDULER_BACKENDS: dict[str, dict[str, Any]] = {
    "graphs": FP16_GRAPHS,
    "optimized-compile-graphs": FAST_MODES["compile"],
    "optimized-autotune-graphs": {**FAST_MODES["compile"], "autotune": True},
    "triton-kernels-graphs": FAST_MODES["kernels"],
    "triton-kernels-fp8-graphs": FAST_MODES["kernels-fp8"],
}

#: the camera test's scheduler on a GPU unless told otherwise: what a bare ``--fast`` runs
DEFAULT_SCHEDULER_BACKEND = "triton-kernels-graphs"
