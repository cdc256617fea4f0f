"""The PyTorch runner's named GPU configurations; importable without torch or numpy (the CLI's choices)."""

from __future__ import annotations

from typing import Any

#: fp16 blocks with a CUDA graph per batch bucket: what every fast configuration builds on
FP16_GRAPHS: dict[str, Any] = {"precision": "fp16", "cuda_graphs": True}

#: ``--fast [MODE]`` in the CLI: the fastest PyTorch configurations measured on GPUs (docs/performance.md)
FAST_MODES: dict[str, dict[str, Any]] = {
    # the project's Triton kernels: the fastest per window and per batch on the H100, and the most
    # cameras in the camera test after their fp8 form (the default)
    "kernels": {**FP16_GRAPHS, "triton_kernels": True},
    # the same with the temporal convolutions on fp8 operands (Hopper GPUs): faster per batch and per
    # window, probabilities within about 1e-4 of fp32 instead of 1e-5
    "kernels-fp8": {**FP16_GRAPHS, "triton_kernels": True, "fp8_temporal": True},
    # the optimized rewrite under torch.compile: measured up to 1,024 cameras
    "compile": {**FP16_GRAPHS, "optimize": True, "compile": True},
}

#: what a bare ``--fast`` selects
DEFAULT_FAST_MODE = "kernels"
