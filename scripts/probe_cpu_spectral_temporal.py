"""Could fewer multiplications bring ONNX Runtime's fp32 CPU time to half the eager baseline's? The
9x1 temporal convolutions are three quarters of the model's multiply-adds; as products of the
frames' discrete Fourier transforms (a real DFT over L >= T + 4 frames, so the zero padding
cannot wrap around) each frequency needs one complex channel product instead of nine taps.

Per temporal convolution shape of the network (batch 1, one stream, 33 joints), ONNX Runtime on
every core: its Conv in the exported (N, C, T, V) layout against the spectral form on frames-major
(N, T, C, V) rows, in plain ONNX operators: a MatMul by the (2F, T) DFT matrix, the complex
products per frequency as a real (2C_out, 2C) block matrix [[Re, -Im], [Im, Re]] (a batched MatMul,
or a Conv with one group per frequency), a MatMul by the inverse DFT's rows (a strided layer keeps
every second output frame) and the bias. The layer boundaries' layout changes are not counted (a
lower bound for the spectral form). Writes <out>/cpu-spectral-temporal-<device>-<date>.json.

    python scripts/probe_cpu_spectral_temporal.py [--out docs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from measure_cpu_fp32_ceiling import cpu_name  # this folder's scripts, on the path when run as a script
from measure_ort_int8_convs import cpu_session
from onnx import TensorProto, helper, numpy_helper

JOINTS, TAPS = 33, 9
# (input channels, output channels, input frames, stride) of the network's temporal convolutions
LAYERS = [(64, 64, 150, 1), (128, 128, 150, 2), (128, 128, 75, 1), (256, 256, 75, 2), (256, 256, 38, 1)]


def _graph(nodes: list[onnx.NodeProto], arrays: dict[str, np.ndarray], shape: list[int]) -> onnx.GraphProto:
    tensors = [numpy_helper.from_array(v.astype(np.int64 if v.dtype.kind == "i" else np.float32), k)
               for k, v in arrays.items()]
    return helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], tensors)


def conv_graph(w: np.ndarray, b: np.ndarray, frames: int, stride: int) -> onnx.GraphProto:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[TAPS, 1], pads=[TAPS // 2, 0, TAPS // 2, 0],
                            strides=[stride, 1])
    return _graph([node], {"w": w, "b": b}, [1, w.shape[1], frames, JOINTS])


def spectral_graph(w: np.ndarray, b: np.ndarray, frames: int, stride: int, grouped: bool) -> onnx.GraphProto:
    c_out, c_in = w.shape[:2]
    length = frames + TAPS // 2  # zero padding of TAPS // 2 frames on both sides cannot wrap around
    freqs = length // 2 + 1
    angle = 2 * np.pi * np.outer(np.arange(freqs), np.arange(frames)) / length
    forward = np.stack([np.cos(angle), -np.sin(angle)], 1).reshape(2 * freqs, frames)  # rows (f, re/im)
    conjugates = np.full(freqs, 2.0)  # a real signal's frequency f also stands for -f ...
    conjugates[0] = 1  # ... but 0
    if length % 2 == 0:
        conjugates[-1] = 1  # and the Nyquist frequency
    out_frames = np.arange(0, frames, stride)
    back = 2 * np.pi * np.outer(out_frames, np.arange(freqs)) / length
    inverse = np.stack([conjugates * np.cos(back), -conjugates * np.sin(back)], 2).reshape(len(out_frames),
                                                                                          2 * freqs) / length
    # output frame t takes input frame t + d - TAPS // 2: a circular kernel h[(TAPS // 2 - d) mod L] = w[d]
    phase = np.exp(-2j * np.pi * np.outer(np.arange(freqs), TAPS // 2 - np.arange(TAPS)) / length)
    spectrum = np.einsum("fd,ocd->foc", phase, w[..., 0].astype(np.float64))
    block = np.block([[spectrum.real, -spectrum.imag], [spectrum.imag, spectrum.real]])  # (F, 2C_out, 2C_in)
    arrays = {"forward": forward, "inverse": inverse, "bias": np.repeat(b, JOINTS).reshape(1, 1, -1),
              "rows": np.array([1, frames, c_in * JOINTS]), "spectrum_out": np.array([1, 2 * freqs, c_out * JOINTS]),
              "frames_out": np.array([1, len(out_frames), c_out, JOINTS])}
    if grouped:
        arrays.update(block=block.reshape(freqs * 2 * c_out, 2 * c_in, 1, 1),
                      spectrum_in=np.array([1, freqs * 2 * c_in, JOINTS, 1]))
        product = helper.make_node("Conv", ["spectrum", "block"], ["products"], group=freqs)
    else:
        arrays.update(block=block, spectrum_in=np.array([1, freqs, 2 * c_in, JOINTS]))
        product = helper.make_node("MatMul", ["block", "spectrum"], ["products"])
    nodes = [helper.make_node("Reshape", ["x", "rows"], ["flat"]),
             helper.make_node("MatMul", ["forward", "flat"], ["transformed"]),
             helper.make_node("Reshape", ["transformed", "spectrum_in"], ["spectrum"]), product,
             helper.make_node("Reshape", ["products", "spectrum_out"], ["products_flat"]),
             helper.make_node("MatMul", ["inverse", "products_flat"], ["back"]),
             helper.make_node("Add", ["back", "bias"], ["biased"]),
             helper.make_node("Reshape", ["biased", "frames_out"], ["y"])]
    return _graph(nodes, arrays, [1, frames, c_in, JOINTS])


def _median_ms(session: ort.InferenceSession, x: np.ndarray, runs: int = 300) -> float:
    for _ in range(30):
        session.run(None, {"x": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def measure(c_in: int, c_out: int, frames: int, stride: int, rng: np.random.Generator) -> dict:
    w = (rng.standard_normal((c_out, c_in, TAPS, 1)) / np.sqrt(TAPS * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    x = rng.random((1, c_in, frames, JOINTS)).astype(np.float32)
    conv = cpu_session(conv_graph(w, b, frames, stride))
    expected = conv.run(None, {"x": x})[0]
    frames_major = np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    result = {"in_channels": c_in, "out_channels": c_out, "frames": frames, "stride": stride,
              "conv_ms": round(_median_ms(conv, x), 3)}
    for form, grouped in (("matmul", False), ("grouped_conv", True)):
        spectral = cpu_session(spectral_graph(w, b, frames, stride, grouped))
        got = spectral.run(None, {"x": frames_major})[0].transpose(0, 2, 1, 3)
        result[f"spectral_{form}_ms"] = round(_median_ms(spectral, frames_major), 3)
        result[f"spectral_{form}_relative_error"] = float(np.abs(got - expected).max() / np.abs(expected).max())
    result["best_speedup"] = round(result["conv_ms"] / min(result["spectral_matmul_ms"],
                                                           result["spectral_grouped_conv_ms"]), 2)
    print(result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks", help="folder for the JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = [measure(*layer, rng) for layer in LAYERS]
    device = f"cpu{os.cpu_count()}"
    report = {"device": f"{cpu_name()}, {platform.machine()}, {os.cpu_count()} cores",
              "onnxruntime": ort.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python scripts/probe_cpu_spectral_temporal.py", "results": results}
    path = Path(args.out) / f"cpu-spectral-temporal-{device}-{time.strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
