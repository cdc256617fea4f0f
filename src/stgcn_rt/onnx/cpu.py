"""Steer ONNX Runtime's CPU to its faster kernels for an INT8 model's wide temporal convolutions.

ONNX Runtime runs a QLinearConv whose weights have zero point 0 (the symmetric form the quantizer
writes) with its symmetric convolution kernels, AVX-512 VNNI at best. With any other weight zero
point it unrolls the input (im2col) and calls its integer GEMM, which uses AMX tiles on CPUs that
have them. On a 2-core AMX Xeon the GEMM path ran the 9x1 temporal convolutions of 256 channels in
0.66-0.68 of the time, those of 128 channels in 0.94-0.96 (within this machine's run-to-run noise:
an earlier run had them slower), and 64 channels and every 1x1 convolution slower
(docs/benchmarks/ort-int8-convs-cpu2-2026-11-26.md; scripts/measure_ort_int8_convs.py measures a
CPU). So on an AMX CPU, and for the 256-channel temporal convolutions only, the runner stores each
weight tensor shifted by -1 with a zero point of -1: the symmetric quantizer's int8 weights lie in
[-127, 127], so the shifted ones still fit and dequantize to the same values, and
the model's outputs are identical to the bit.

:func:`rewritten_for_cpu` gives the runner its copy of a model with this routing, the float graph
steps aggregate-first (:mod:`.onnxruntime_aggregate`) and the quantized ones channels-last
(:mod:`.onnxruntime_int8_steps`), from one load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from stgcn_rt.onnx.aggregate import aggregate_graph_steps_first
from stgcn_rt.onnx.graph import consumers
from stgcn_rt.onnx.int8_steps import graph_steps_channels_last

#: the narrowest temporal convolution worth the GEMM path (output channels; see the module docstring)
MIN_GEMM_CHANNELS = 256


def cpu_has_amx_int8(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU reports AMX int8 tiles (Linux); False where that cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_int8" in line.split() for line in text.splitlines())


def route_wide_convs_to_gemm(model: onnx.ModelProto, min_channels: int = MIN_GEMM_CHANNELS) -> int:
    """Rewrite ``model`` in place: the int8 weights of every convolution with a temporal kernel (more
    than one tap) and at least ``min_channels`` outputs get a zero point of -1. Returns how many."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    readers = consumers(graph)
    routed = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight_init, zero_init = initializers.get(node.input[0]), initializers.get(node.input[2])
        if weight_init is None or zero_init is None:
            continue
        users = readers.get(node.output[0], [])
        if not users or any(u.op_type != "Conv" for u in users):
            continue
        if any(len(readers.get(name, [])) != 1 for name in node.input[0:3:2]):
            continue  # shared with another tensor's dequantization: leave it as it is
        weight = numpy_helper.to_array(weight_init)
        zero = numpy_helper.to_array(zero_init)
        if (weight.dtype != np.int8 or weight.ndim != 4 or weight.shape[0] < min_channels
                or weight.shape[2] * weight.shape[3] == 1 or zero.any() or weight.min() < -127):
            continue
        weight_init.CopyFrom(numpy_helper.from_array((weight.astype(np.int16) - 1).astype(np.int8), weight_init.name))
        zero_init.CopyFrom(numpy_helper.from_array(np.full_like(zero, -1), zero_init.name))
        routed += 1
    return routed


def rewritten_for_cpu(path: str | os.PathLike[str], integer_gemm: bool, aggregate_first: bool,
                      channels_last: bool = False) -> tuple[str | bytes, int, int, int]:
    """The model at ``path`` to open on ONNX Runtime's CPU: its bytes with the wide INT8 convolutions
    routed to the integer GEMM (``integer_gemm``), the float graph steps aggregate-first
    (``aggregate_first``) and the quantized ones channels-last (``channels_last``), or its path where
    none applies; and how many convolutions, float steps and quantized steps were rewritten."""
    model = onnx.load(str(path))
    routed = route_wide_convs_to_gemm(model) if integer_gemm else 0
    steps = aggregate_graph_steps_first(model) if aggregate_first else 0
    quantized_steps = graph_steps_channels_last(model) if channels_last else 0
    changed = routed or steps or quantized_steps
    return (model.SerializeToString() if changed else str(path)), routed, steps, quantized_steps
