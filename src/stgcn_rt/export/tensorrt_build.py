"""Build TensorRT engines from stgcn-rt ONNX models, with a JSON sidecar describing each engine.

fp32 and fp16 come from one fp32 ONNX (fp16 keeps data_bn, pooling and the classifier in fp32);
int8 builds a Q/DQ ONNX first (see :mod:`stgcn_rt.export.quantize`). TensorRT-RTX, which is
strongly typed, takes precision from the ONNX itself (``stgcn-rt export --precision fp16``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stgcn_rt import __version__
from stgcn_rt.artefact import ModelMetadata, sidecar_path
from stgcn_rt.errors import StgcnError
from stgcn_rt.export import trt_compat
from stgcn_rt.files import atomic_output, check_output_path, sha256_of

if TYPE_CHECKING:  # the TensorRT 10 API, checked by mypy against tensorrt-stubs
    import tensorrt

PRECISIONS = ("fp32", "fp16", "int8")
#: layers kept in fp32 when the rest runs in fp16 (matched against ONNX node / TensorRT layer names)
FP32_LAYERS = ("data_bn", "fcn")


@dataclass
class BuildOptions:
    precision: str = "fp16"
    workspace: int = 1 << 30
    timing_cache: Path | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    builder: str = "auto"  # "tensorrt", "rtx" or "auto" (tensorrt, else tensorrt_rtx)
    compute_capability: str | None = None  # TensorRT-RTX ahead-of-time target, e.g. "sm86"
    max_batch: int = 64  # for a dynamic-batch ONNX: the optimisation profile's range is 1..max
    opt_batch: int = 8
    # INT8 the implicit way (TensorRT's entropy calibrator on an fp32 ONNX), where the installed
    # TensorRT still has it; the default is explicit Q/DQ (stgcn-rt quantize)
    int8_mode: str = "explicit"
    calibration: np.ndarray | None = None
    calibration_cache: Path | None = None


def parse_size(text: str) -> int:
    """'1GiB', '512MiB', '2G', '1048576' -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)\s*", text, flags=re.IGNORECASE)
    if not match:
        raise StgcnError(f"cannot read the size '{text}': write e.g. 1GiB, 512MiB or 2G")
    number, unit, _ = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _gpu(trt: Any, target: str | None) -> tuple[str, str]:
    if target is not None and target != "current":
        return f"any {target} GPU (ahead-of-time build)", target.replace("sm", "")
    if _cuda_available():
        import torch

        major, minor = torch.cuda.get_device_capability()
        return torch.cuda.get_device_name(), f"{major}.{minor}"
    return "unknown", "unknown"


def _parse(trt: Any, onnx_path: Path, logger: Any
           ) -> tuple[tensorrt.Builder, tensorrt.INetworkDefinition, tensorrt.OnnxParser]:
    builder: tensorrt.Builder = trt.Builder(logger)
    network = builder.create_network(trt_compat.network_flags(trt))
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise StgcnError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors[0] if errors else 'no detail'}"
                         + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""))
    return builder, network, parser


def _tensor_info(network: tensorrt.INetworkDefinition) -> tuple[list[dict], list[dict]]:
    def info(tensor: Any) -> dict:
        return {"name": tensor.name, "shape": list(tensor.shape), "dtype": str(tensor.dtype).split(".")[-1]}

    return ([info(network.get_input(i)) for i in range(network.num_inputs)],
            [info(network.get_output(i)) for i in range(network.num_outputs)])


def fp32_layers(trt: Any, network: tensorrt.INetworkDefinition) -> list[int]:
    """The layers an fp16 engine keeps in fp32: input normalisation and the classifier (by name), the
    reductions (pooling) and every layer that reads their results, down to the outputs.

    Pinning only the reductions is not enough: the pooling's scale after each sum would take the
    sum in fp16 again, and the sum over T x V positions passes fp16's 65,504 once the last block's
    activations reach the hundreds.
    """
    downstream: set[str] = set()  # tensors computed from a reduction
    chosen = []
    for i in range(network.num_layers):  # layers come in topological order
        layer = network.get_layer(i)
        reads_pooled = any(layer.get_input(j) is not None and layer.get_input(j).name in downstream
                           for j in range(layer.num_inputs))
        if reads_pooled or layer.type == trt.LayerType.REDUCE or any(key in layer.name for key in FP32_LAYERS):
            chosen.append(i)
            if reads_pooled or layer.type == trt.LayerType.REDUCE:
                downstream.update(layer.get_output(j).name for j in range(layer.num_outputs))
    return chosen


def _keep_sensitive_layers_fp32(trt: Any, network: tensorrt.INetworkDefinition,
                                config: tensorrt.IBuilderConfig) -> int:
    """Pin :func:`fp32_layers` to fp32 inside an fp16 engine."""
    chosen = fp32_layers(trt, network)
    for i in chosen:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return len(chosen)


def configure_precision(trt: Any, network: tensorrt.INetworkDefinition, config: tensorrt.IBuilderConfig,
                        precision: str, onnx_precision: str, report: Callable[[str], None]) -> None:
    if not trt_compat.has_precision_flags(trt):  # strongly typed builder (TensorRT-RTX)
        if precision != onnx_precision:
            how = ("quantize it with stgcn-rt quantize" if precision == "int8"
                   else f"export with --precision {precision}")
            raise StgcnError(f"this builder is strongly typed and takes precision from the ONNX, which is "
                             f"{onnx_precision}: {how}")
        return
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        kept = _keep_sensitive_layers_fp32(trt, network, config)
        report(f"      fp16, {kept} accuracy-sensitive layers kept in fp32")
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # with Q/DQ nodes: explicit quantization, no calibrator


def entropy_calibrator(trt: Any, windows: np.ndarray, cache: Path | None) -> Any:
    """TensorRT's implicit INT8 calibrator fed from ``windows`` through PyTorch's CUDA memory.

    The calibration cache is read when present and written after calibration, so rebuilds skip
    the calibration pass.
    """
    import torch

    if not torch.cuda.is_available():
        raise StgcnError("implicit INT8 calibration runs on the GPU and PyTorch sees none: use explicit Q/DQ "
                         "(stgcn-rt quantize), which runs on the CPU")
    batch = windows[:1]

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device = torch.empty(batch.shape, dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(windows):
                return None
            self.device.copy_(torch.from_numpy(np.ascontiguousarray(windows[self.index:self.index + 1],
                                                                    dtype=np.float32)))
            self.index += 1
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache is not None and cache.exists() else None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                with atomic_output(cache) as tmp:
                    tmp.write_bytes(bytes(data))

    return Calibrator()


def build_engine(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], options: BuildOptions,
                 report: Callable[[str], None] = print) -> tuple[Path, dict]:
    """Build ``output`` from ``onnx_path`` and write ``output.json`` beside it; returns both.

    The parser is kept alive until the build ends: TensorRT's network refers to its weights.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise StgcnError(f"ONNX model {onnx_path} not found")
    if options.precision not in PRECISIONS:
        raise StgcnError(f"--precision must be one of {', '.join(PRECISIONS)}, got {options.precision}")
    check_output_path(output)
    from stgcn_rt.export.onnx_file import read_onnx_metadata
    from stgcn_rt.export.quantize import is_quantized

    meta = read_onnx_metadata(onnx_path)
    onnx_precision = meta.get("precision", "fp32")
    implicit = options.precision == "int8" and options.int8_mode == "implicit"
    if options.precision == "int8" and not implicit and not is_quantized(onnx_path):
        raise StgcnError(f"{onnx_path} has no Q/DQ nodes: make an INT8 ONNX first with "
                         f"stgcn-rt quantize {onnx_path} --calib windows.npy (or pass --calib to build)")
    if meta.get("int8_target", "tensorrt") != "tensorrt":
        raise StgcnError(f"{onnx_path} was quantized for {meta['int8_target']} (uint8 activations), which TensorRT "
                         "cannot build: quantize the fp32 ONNX again with --target tensorrt")
    if implicit and options.calibration is None and not (options.calibration_cache and
                                                         options.calibration_cache.exists()):
        raise StgcnError("implicit INT8 needs calibration windows (--calib/--calib-video) or a calibration cache")
    if options.dla_core is not None and options.precision == "fp32":
        raise StgcnError("DLA runs fp16 or int8 only: use --precision fp16 or int8 with --dla-core")

    trt = trt_compat.import_tensorrt(options.builder)
    logger = trt.Logger(trt.Logger.WARNING)
    report(f"      {trt.__name__} {trt.__version__}: parsing {onnx_path.name}")
    builder, network, _parser = _parse(trt, onnx_path, logger)
    config: tensorrt.IBuilderConfig = builder.create_builder_config()
    trt_compat.set_workspace(trt, config, options.workspace)
    target = trt_compat.set_target(trt, config, options.compute_capability)
    if implicit and not trt_compat.has_implicit_int8(trt):
        raise StgcnError(f"{trt.__name__} {trt.__version__} has no implicit INT8 calibrators: use explicit "
                         "Q/DQ (stgcn-rt quantize, or build --int8-mode explicit)")
    configure_precision(trt, network, config, options.precision, onnx_precision, report)
    if implicit:
        windows = options.calibration if options.calibration is not None else np.zeros((1, 1), np.float32)
        config.int8_calibrator = entropy_calibrator(trt, windows, options.calibration_cache)
        report(f"      implicit INT8: entropy calibration on {len(windows)} windows")
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        if options.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    inputs, outputs = _tensor_info(network)
    if any(d == -1 for d in inputs[0]["shape"]):
        profile = builder.create_optimization_profile()
        shape = inputs[0]["shape"]
        low, opt, high = ([b] + shape[1:] for b in (1, min(options.opt_batch, options.max_batch), options.max_batch))
        profile.set_shape(inputs[0]["name"], low, opt, high)
        config.add_optimization_profile(profile)
        report(f"      dynamic batch: profile 1 / {opt[0]} / {high[0]}")
    if target == "current" and not _cuda_available():  # TensorRT-RTX asked to build for this machine's GPU
        raise StgcnError(f"{trt.__name__} has no GPU here to build for: name the target with --compute-capability "
                         "(e.g. sm86 for an RTX 30xx, sm89 for an RTX 40xx)")
    cache = None
    if options.timing_cache is not None:
        data = options.timing_cache.read_bytes() if options.timing_cache.exists() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
    trt_compat.attach_progress(trt, config, report)
    report("      building (this can take minutes on a Jetson)")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StgcnError(f"TensorRT could not build an engine from {onnx_path} (see its messages above); "
                         "try a larger --workspace or another --precision")
    seconds = time.perf_counter() - start
    with atomic_output(output) as tmp:
        tmp.write_bytes(bytes(serialized))
    if cache is not None and options.timing_cache is not None:
        with atomic_output(options.timing_cache) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    gpu_name, capability = _gpu(trt, target)
    sidecar = {
        "stgcn_rt_version": __version__,
        "tensorrt": trt.__name__,
        "tensorrt_version": trt.__version__,
        "gpu": gpu_name,
        "compute_capability": capability,
        "dla_core": options.dla_core,
        "inputs": inputs,
        "outputs": outputs,
        **replace(ModelMetadata.from_onnx(meta), precision=options.precision).to_sidecar(),
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_of(onnx_path),
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_output(sidecar_path(output)) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2) + "\n")
    return Path(output), sidecar
