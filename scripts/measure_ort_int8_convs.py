"""Which ONNX Runtime CPU kernel runs each INT8 convolution of the network faster: one QLinearConv per
convolution shape of the ST-GCN blocks (M=1, batch 1, uint8 activations, per-channel int8 weights),
timed with the weights' zero point 0 (ONNX Runtime's symmetric convolution kernels) and -1 (im2col
and its integer GEMM, AMX where the CPU has it), as the runner's routing writes them. Sessions are
timed one after another. Writes docs/benchmarks/ort-int8-convs-<device>-<date>.{json,md}.

    python scripts/measure_ort_int8_convs.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from stgcn_rt.runtime.backends.onnxruntime_kernels import cpu_has_amx_int8

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
JOINTS = 33
#: (kind, input channels, output channels, taps, input frames, stride) of the blocks' convolutions
SHAPES = [("graph 1x1", 3, 192, 1, 150, 1), ("graph 1x1", 64, 192, 1, 150, 1), ("graph 1x1", 64, 384, 1, 150, 1),
          ("graph 1x1", 128, 384, 1, 75, 1), ("graph 1x1", 128, 768, 1, 75, 1), ("graph 1x1", 256, 768, 1, 38, 1),
          ("temporal 9x1", 64, 64, 9, 150, 1), ("temporal 9x1", 128, 128, 9, 150, 2),
          ("temporal 9x1", 128, 128, 9, 75, 1), ("temporal 9x1", 256, 256, 9, 75, 2),
          ("temporal 9x1", 256, 256, 9, 38, 1), ("residual 1x1", 64, 128, 1, 150, 2),
          ("residual 1x1", 128, 256, 1, 75, 2)]


def cpu_session(graph: onnx.GraphProto) -> ort.InferenceSession:
    """A CPU session of one graph, on every core of this machine."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = os.cpu_count() or 1
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def median_ms(c_in: int, c_out: int, taps: int, frames: int, stride: int, zero_point: int, runs: int = 40) -> float:
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (c_out, c_in, taps, 1)).astype(np.int16) + zero_point
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
             numpy_helper.from_array(weight.astype(np.int8), "w"),
             numpy_helper.from_array(np.full(c_out, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.full(c_out, zero_point, np.int8), "w_zero"),
             numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "y_zero"),
             numpy_helper.from_array(np.zeros(c_out, np.int32), "bias")]
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero",
                                            "bias"], ["y"], pads=[taps // 2, 0, taps // 2, 0], strides=[stride, 1])
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                             [1, c_in, frames, JOINTS])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    session = cpu_session(graph)
    x = rng.integers(0, 256, (1, c_in, frames, JOINTS)).astype(np.uint8)
    times = []
    for _ in range(runs + 3):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]) * 1000)


def gemm_tops(size: int = 2048, runs: int = 10) -> float:
    """ONNX Runtime's integer GEMM on its own: a size-cubed uint8 x int8 MatMulInteger, in tera-ops/s."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 128, (size, size)).astype(np.int8), "b")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, None)], [weight])
    session = cpu_session(graph)
    a = rng.integers(0, 256, (size, size)).astype(np.uint8)
    for _ in range(3):
        session.run(None, {"a": a})
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, {"a": a})
    return 2 * size ** 3 * runs / (time.perf_counter() - start) / 1e12


def main() -> None:
    rows = []
    for kind, c_in, c_out, taps, frames, stride in SHAPES:
        symmetric, gemm = (median_ms(c_in, c_out, taps, frames, stride, zero) for zero in (0, -1))
        rows.append({"kind": kind, "c_in": c_in, "c_out": c_out, "frames": frames, "stride": stride,
                     "symmetric_ms": symmetric, "gemm_ms": gemm})
        print(rows[-1], flush=True)
    device = f"cpu{os.cpu_count()}"
    stem = f"ort-int8-convs-{device}-{time.strftime('%Y-%m-%d')}"
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "onnxruntime": ort.__version__,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "amx_int8": cpu_has_amx_int8(),
           "gemm_tops_2048": gemm_tops(), "command": "python scripts/measure_ort_int8_convs.py"}
    (OUT / f"{stem}.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    lines = [f"# ONNX Runtime's INT8 convolution kernels: CPU ({env['cpu']}, {env['cpu_count']} cores, "
             f"AMX int8: {'yes' if env['amx_int8'] else 'no'})", "",
             f"{env['date']}; onnxruntime {env['onnxruntime']}. Command: `{env['command']}`. One QLinearConv per "
             "shape of the ST-GCN blocks (M=1, batch 1, 33 joints), median of 40 runs after 3 warm-up runs; "
             "weight zero point 0 runs ONNX Runtime's symmetric convolution kernels, -1 its im2col + integer "
             "GEMM. For scale: a 2048-cube uint8 x int8 MatMulInteger runs "
             f"{env['gemm_tops_2048']:.2f} tera-ops/s here.", "",
             "| convolution | channels in -> out | input frames | stride | zero point 0 (ms) | zero point -1 (ms) | "
             "ratio |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['kind']} | {r['c_in']} -> {r['c_out']} | {r['frames']} | {r['stride']} | {r['symmetric_ms']:.3f} "
              f"| {r['gemm_ms']:.3f} | {r['gemm_ms'] / r['symmetric_ms']:.2f} |" for r in rows]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
