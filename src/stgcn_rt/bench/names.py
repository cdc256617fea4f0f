"""Names of the benchmark's backends, importable without torch (the CLI's choices)."""

from typing import Any

BACKEND_NAMES = ("eager", "fp16", "graphs", "compile", "compile-graphs", "optimized-graphs",
                 "optimized-serial-compile-graphs", "optimized-compile-graphs", "optimized-autotune-graphs",
                 "triton-kernels-graphs", "onnxruntime", "onnxruntime-int8", "onnxruntime-int8-bn", "tensorrt",
                 "triton")

#: what the batching scheduler of the camera test may run on a GPU (fp16, CUDA graphs, plus these
#: options of the PyTorch runner)
SCHEDULER_BACKENDS: dict[str, dict[str, Any]] = {
    "graphs": {},
    "optimized-compile-graphs": {"optimize": True, "compile": True},
    "optimized-autotune-graphs": {"optimize": True, "compile": True, "autotune": True},
    "triton-kernels-graphs": {"triton_kernels": True},
}
