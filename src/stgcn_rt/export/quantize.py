"""INT8 by explicit quantization: a Q/DQ ONNX made by onnxruntime.quantization from real windows.

TensorRT prefers explicit (Q/DQ) quantization over its implicit calibrators, and the same file
runs on ONNX Runtime's CPU, so the INT8 model can be checked against fp32 without a GPU. The
default form is symmetric (zero points 0), which is what TensorRT accepts; ``target="onnxruntime"``
makes the form ONNX Runtime's CPU kernels run fastest (see TARGETS). Input normalisation
(data_bn) and the classifier (fcn) stay fp32 by default: they see raw keypoints and the final
logits, where INT8 steps cost decisions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from stgcn_rt.errors import StgcnError
from stgcn_rt.export.onnx_file import read_onnx
from stgcn_rt.files import atomic_output
from stgcn_rt.onnx.batchnorm import fold_graph_batchnorms

DEFAULT_KEEP_FP32 = ("data_bn", "fcn")
METHODS = ("entropy", "minmax", "percentile")


class _WindowReader:
    """onnxruntime's CalibrationDataReader protocol over an array of windows."""

    def __init__(self, input_name: str, windows: np.ndarray, batch: int) -> None:
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = (windows[i:i + batch] for i in range(0, len(windows), batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


#: what each target's INT8 looks like. TensorRT fuses Q/DQ into convolutions and matrix products and
#: takes symmetric int8 activations with float biases; ONNX Runtime's CPU kernels (MLAS, VNNI/AMX)
#: run fused QLinearConv only with an int32 bias, and are fastest with uint8 activations. For ONNX
#: Runtime the BatchNorm after each graph step is folded first (``fold_batchnorms``, see
#: :mod:`stgcn_rt.onnx.batchnorm`): its shift Adds are quantized and the Relus after them
#: folded into their outputs, so a block runs in 8 bits from one convolution to the next.
TARGETS: dict[str, dict[str, Any]] = {
    "tensorrt": {"activation": "QInt8", "fold_batchnorms": False,
                 "extra": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                           "CalibTensorRangeSymmetric": True}},
    "onnxruntime": {"activation": "QUInt8", "fold_batchnorms": True,
                    "extra": {"WeightSymmetric": True}},
}


def quantize_int8(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], windows: np.ndarray,
                  method: str = "percentile", keep_fp32: tuple[str, ...] = DEFAULT_KEEP_FP32,
                  target: str = "tensorrt", fold_batchnorms: bool | None = None) -> Path:
    """Write a Q/DQ INT8 copy of ``onnx_path`` calibrated on ``windows`` (N, C, T, V, M), in the form
    ``target`` (tensorrt or onnxruntime, see TARGETS) runs fastest. ``fold_batchnorms`` overrides
    the target's choice of folding the graph steps' BatchNorms (False: the form before the fold)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise StgcnError(f"unknown calibration method {method}: choose one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise StgcnError(f"unknown INT8 target {target}: choose one of {', '.join(TARGETS)}")
    form = TARGETS[target]
    model = read_onnx(onnx_path)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("precision", "fp32") != "fp32":
        raise StgcnError(f"{onnx_path} is {meta['precision']}: quantize the fp32 export")
    graph_input = model.graph.input[0]
    dims = [d.dim_value or None for d in graph_input.type.tensor_type.shape.dim]
    if windows.ndim != 5 or any(d is not None and w != d for w, d in zip(windows.shape[1:], dims[1:])):
        raise StgcnError(f"calibration windows have shape {windows.shape}; the model takes (N, {dims[1:]})")
    if len(windows) < 8:
        raise StgcnError(f"{len(windows)} calibration windows are too few: give at least 8 (hundreds are better)")
    fold = form["fold_batchnorms"] if fold_batchnorms is None else fold_batchnorms
    shift_adds = fold_graph_batchnorms(model) if fold else []
    # of the Adds only the folded shifts are quantized: the residual sums already run as integer adds,
    # and the two streams' logits are summed in float
    excluded = [n.name for n in model.graph.node if any(k in n.name for k in keep_fp32)
                or (n.op_type == "Add" and n.name not in shift_adds)]
    batch = dims[0] or 8
    usable = windows[: len(windows) - len(windows) % batch] if dims[0] else windows
    calibrate = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
                 "percentile": CalibrationMethod.Percentile}[method]
    with atomic_output(output) as tmp, tempfile.TemporaryDirectory(prefix="stgcn-rt-int8-") as work:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime.quantization advises through the root logger
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it also prints its histogram settings
                source = Path(work) / "fp32.onnx"
                onnx.save(model, str(source))
                quantize_static(
                    str(source), str(Path(work) / "q.onnx"), _WindowReader(graph_input.name, usable, batch),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=getattr(QuantType, form["activation"]), weight_type=QuantType.QInt8,
                    calibrate_method=calibrate, nodes_to_exclude=excluded,
                    op_types_to_quantize=["Conv", "MatMul", *(["Add", "Relu"] if fold else [])],
                    extra_options={**form["extra"], "CalibPercentile": 99.999},
                )
        finally:
            root.setLevel(level)
        quantized = onnx.load(str(Path(work) / "q.onnx"))
        del quantized.metadata_props[:]
        for key, value in {**meta, "precision": "int8", "int8_calibration": f"{method}, {len(usable)} windows",
                           "int8_target": target, "int8_graph_batchnorm": "folded" if fold else "float",
                           "int8_fp32_nodes": ",".join(keep_fp32)}.items():
            quantized.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
    return Path(output)


def is_quantized(onnx_path: str | os.PathLike[str]) -> bool:
    model = read_onnx(onnx_path, load_external_data=False)
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)
