"""Named configurations of the runners: one table read by the command line (``--fast``), the
benchmark's candidates and its camera test's scheduler alike, as ultralytics' ``export_formats()`` is
read by its exporter, AutoBackend and benchmark. Importable without torch or numpy (the CLI's choices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stgcn_rt.errors import StgcnError

#: fp16 blocks with a CUDA graph per batch bucket: what every fast configuration builds on
FP16_GRAPHS: dict[str, Any] = {"precision": "fp16", "cuda_graphs": True}


@dataclass(frozen=True)
class Configuration:
    """A runner and its options, by name.

    ``backend``: ``roadmap`` (the roadmap's eager fp32 loop, the benchmark's baseline), ``pytorch``
    (the PyTorch runner), ``onnxruntime`` (on an fp32 export, or with ``int8`` on its INT8 form in
    ONNX Runtime's layout, the options of :func:`~stgcn_rt.export.quantize.quantize_int8`),
    ``tensorrt`` (an engine) or ``triton`` (a model served by a Triton Inference Server).
    ``options``: the runner's keyword options. ``gpu``: it needs a CUDA GPU.
    """

    name: str
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    int8: dict[str, Any] | None = None
    gpu: bool = False


def _pytorch(name: str, **options: Any) -> Configuration:
    return Configuration(name, "pytorch", options, gpu=True)


def _onnxruntime(name: str, int8: dict[str, Any] | None = None, **options: Any) -> Configuration:
    return Configuration(name, "onnxruntime", options, int8)


CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration("eager", "roadmap"),
    _pytorch("fp16", precision="fp16"),
    _pytorch("graphs", **FP16_GRAPHS),
    _pytorch("compile", precision="fp16", compile=True),
    _pytorch("compile-graphs", **FP16_GRAPHS, compile=True),
    # the inference rewrite (channels-last, sparse graph step, folded BatchNorms, two CUDA streams)
    _pytorch("optimized-graphs", **FP16_GRAPHS, optimize=True),
    _pytorch("optimized-serial-compile-graphs", **FP16_GRAPHS, optimize=True, parallel_streams=False, compile=True),
    _pytorch("optimized-compile-graphs", **FP16_GRAPHS, optimize=True, compile=True),
    _pytorch("optimized-autotune-graphs", **FP16_GRAPHS, optimize=True, compile=True, autotune=True),
    # the project's GPU kernels: the fastest per window and per batch on the H100
    _pytorch("kernels-graphs", **FP16_GRAPHS, kernels=True),
    _pytorch("kernels-pointer-loads-graphs", **FP16_GRAPHS, kernels=True, tma_loads=False),
    _pytorch("kernels-fp8-graphs", **FP16_GRAPHS, kernels=True, fp8_temporal=True),
    _onnxruntime("onnxruntime"),
    _onnxruntime("onnxruntime-as-exported", aggregate_first=False),
    _onnxruntime("onnxruntime-one-session", parallel_windows=False),
    _onnxruntime("onnxruntime-int8", int8={}),
    _onnxruntime("onnxruntime-int8-bn", int8={"fold_batchnorms": False}),
    _onnxruntime("onnxruntime-int8-symmetric", int8={}, integer_gemm=False),
    _onnxruntime("onnxruntime-int8-nchw-steps", int8={}, channels_last_steps=False),
    Configuration("tensorrt", "tensorrt", {"cuda_graphs": True}, gpu=True),
    Configuration("triton", "triton"),
)

#: every configuration's name, in the table's order
NAMES: tuple[str, ...] = tuple(c.name for c in CONFIGURATIONS)

#: names from before the GPU kernels were called kernels, still accepted
ALIASES: dict[str, str] = {f"triton-{name}": name for name in NAMES if name.startswith("kernels-")}

#: ``--fast [MODE]``: the fastest PyTorch configurations measured on GPUs (docs/performance.md): the GPU
#: kernels (the default), their fp8 form (Hopper: faster, probabilities within about 1e-4 of fp32
#: instead of 1e-5), and the optimized rewrite under torch.compile
FAST_MODES: dict[str, str] = {"kernels": "kernels-graphs", "kernels-fp8": "kernels-fp8-graphs",
                              "compile": "optimized-compile-graphs"}
DEFAULT_FAST_MODE = "kernels"

#: what the benchmark's batching scheduler may run on a GPU: the PyTorch configurations with CUDA graphs
SCHEDULER_BACKENDS: tuple[str, ...] = tuple(c.name for c in CONFIGURATIONS
                                            if c.backend == "pytorch" and c.options.get("cuda_graphs"))
#: ... unless told otherwise: what a bare ``--fast`` runs
DEFAULT_SCHEDULER_BACKEND = FAST_MODES[DEFAULT_FAST_MODE]


def configuration(name: str) -> Configuration:
    """The configuration called ``name`` (or an old alias of it); an unknown name is one clear error."""
    name = ALIASES.get(name, name)
    for found in CONFIGURATIONS:
        if found.name == name:
            return found
    raise StgcnError(f"unknown backend {name}: choose from {', '.join(NAMES)}")


def fast_options(mode: str = DEFAULT_FAST_MODE) -> dict[str, Any]:
    """The PyTorch runner's options for ``--fast MODE``."""
    return dict(configuration(FAST_MODES[mode]).options)
