"""How close the eager fp32 baseline already runs to this CPU's fp32 arithmetic ceiling, which bounds
what any fp32 backend computing the same products can reach: a 2048-cube fp32 MatMul in ONNX
Runtime and in PyTorch (every core; the best of their rates stands for the ceiling), against one
batch-1 window of the demo model in eager PyTorch (its operations counted by
``stgcn_rt.model.summary.count_flops``). Writes docs/benchmarks/cpu-fp32-ceiling-<device>-<date>.{json,md}.

    python scripts/measure_cpu_fp32_ceiling.py
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from stgcn_rt.data import real_windows
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.model.summary import count_flops

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
SIZE, RUNS = 2048, 10


def best_seconds(call, runs: int) -> float:  # noqa: ANN001 - any callable
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def ort_matmul_gflops() -> float:
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [SIZE, SIZE]) for n in ("a", "b")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SIZE, SIZE])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a, b = (np.random.default_rng(i).random((SIZE, SIZE), dtype=np.float32) for i in range(2))
    return 2 * SIZE**3 / best_seconds(lambda: session.run(None, {"a": a, "b": b}), RUNS) / 1e9


def torch_matmul_gflops() -> float:
    a, b = torch.rand(SIZE, SIZE), torch.rand(SIZE, SIZE)
    return 2 * SIZE**3 / best_seconds(lambda: a @ b, RUNS) / 1e9


def cpu_name() -> str:
    """The processor's model name where Linux tells it, else the architecture."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    loaded = load_checkpoint(make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo.pt"))
    model = loaded.model.eval()
    window = torch.from_numpy(np.ascontiguousarray(real_windows()[:1]))
    gflop = count_flops(model, tuple(window.shape)) / 1e9
    with torch.no_grad():
        eager_s = float(np.median([best_seconds(lambda: model(window), 1) for _ in range(20)]))
    ceiling = {"onnxruntime": ort_matmul_gflops(), "pytorch": torch_matmul_gflops()}
    best = max(ceiling.values())
    eager_rate = gflop / eager_s
    result = {"device": f"{cpu_name()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python scripts/measure_cpu_fp32_ceiling.py", "onnxruntime": ort.__version__,
              "torch": torch.__version__, "window_gflop": round(gflop, 2), "eager_ms": round(eager_s * 1000, 1),
              "eager_gflops": round(eager_rate, 1),
              "matmul_2048_gflops": {k: round(v, 1) for k, v in ceiling.items()},
              "eager_share_of_ceiling": round(eager_rate / best, 3),
              "twice_eager_needs_gflops": round(2 * eager_rate, 1)}
    name = f"cpu-fp32-ceiling-cpu{os.cpu_count()}-{time.strftime('%Y-%m-%d')}"
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (OUT / f"{name}.md").write_text("\n".join([
        f"# fp32 arithmetic ceiling: {result['device']}", "",
        f"{result['date']}; torch {result['torch']}, onnxruntime {result['onnxruntime']}. "
        f"Command: `{result['command']}`.", "",
        "| | GFLOP/s |", "| --- | --- |",
        f"| 2048-cube fp32 MatMul, ONNX Runtime | {ceiling['onnxruntime']:.1f} |",
        f"| 2048-cube fp32 MatMul, PyTorch | {ceiling['pytorch']:.1f} |",
        f"| eager PyTorch, one batch-1 window ({gflop:.2f} GFLOP in {eager_s * 1000:.1f} ms, median of 20) "
        f"| {eager_rate:.1f} |", "",
        f"The eager baseline runs at {eager_rate / best:.0%} of the faster MatMul's rate; running the same "
        f"products twice as fast would take {2 * eager_rate:.0f} GFLOP/s, "
        f"{2 * eager_rate / best:.2f}x what either library's best-case fp32 product reaches on this machine.", ""]))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
