"""Where ONNX Runtime's CPU time goes, by operator type, for the demo model's fp32 export as written
and with the runner's graph steps aggregate-first (batch 1, M=1, real windows, every core), from
ONNX Runtime's own profiler: the sum of its kernel times per operator type, per window. Writes
docs/benchmarks/ort-ops-<device>-<date>.{json,md}.

    python scripts/profile_ort_ops.py
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stgcn_rt.data import real_windows
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.model.summary import count_flops
from stgcn_rt.runtime.backends.onnxruntime_kernels import rewritten_for_cpu

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
RUNS = 20
WARM_UP = 3


def op_times(model: str | bytes, window: np.ndarray, work: Path) -> dict[str, float]:
    """Milliseconds per window by operator type (warm-up runs excluded)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = os.cpu_count() or 1
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "ort")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: window}
    for _ in range(WARM_UP):
        session.run(None, feed)
    start = time.perf_counter()
    for _ in range(RUNS):
        session.run(None, feed)
    wall = (time.perf_counter() - start) * 1000 / RUNS
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_op: Counter = Counter()
    for event in kernels[len(kernels) * WARM_UP // (RUNS + WARM_UP):]:  # the timed runs only
        by_op[event["args"]["op_name"]] += event["dur"] / 1000 / RUNS
    return {"wall_ms": wall, **dict(by_op.most_common())}


def main() -> None:
    work = Path(tempfile.mkdtemp())
    loaded = load_checkpoint(make_demo_checkpoint(work / "demo.pt"))
    path, _ = export_onnx(loaded, work / "fp32.onnx", ExportOptions(dynamic_batch=True), validate=False)
    window = real_windows()[:1].astype(np.float32)
    first, _, steps, _ = rewritten_for_cpu(path, integer_gemm=False, aggregate_first=True)
    forms = {"as exported": op_times(str(path), window, work),
             f"graph steps aggregate-first ({steps})": op_times(first, window, work)}
    gflop = count_flops(loaded.model, tuple(window.shape)) / 1e9
    conv_gflop = count_flops(loaded.model, tuple(window.shape), "convolution") / 1e9
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "onnxruntime": ort.__version__,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "gflop_per_window": gflop,
           "convolution_gflop_per_window": conv_gflop,
           "command": "python scripts/profile_ort_ops.py"}
    stem = f"ort-ops-cpu{os.cpu_count()}-{time.strftime('%Y-%m-%d')}"
    (OUT / f"{stem}.json").write_text(json.dumps({"environment": env, "forms": forms}, indent=2) + "\n")
    ops = sorted({op for times in forms.values() for op in times if op != "wall_ms"},
                 key=lambda op: -max(t.get(op, 0.0) for t in forms.values()))
    lines = [f"# ONNX Runtime CPU time by operator: demo model fp32 ({env['cpu']}, {env['cpu_count']} cores)", "",
             f"{env['date']}; onnxruntime {env['onnxruntime']}. Command: `{env['command']}`. Batch 1, M=1, one real "
             f"window, {RUNS} profiled runs after warm-up; sums of ONNX Runtime's kernel times per operator type, "
             f"ms per window. The model costs {gflop:.2f} GFLOP per window, {conv_gflop:.2f} of them in convolutions.",
             "",
             "| operator | " + " | ".join(forms) + " |", "| --- |" + " --- |" * len(forms)]
    lines += [f"| {op} | " + " | ".join(f"{t.get(op, 0.0):.2f}" for t in forms.values()) + " |" for op in ops]
    lines += ["| sum of kernels | " + " | ".join(f"{sum(v for k, v in t.items() if k != 'wall_ms'):.1f}"
                                                for t in forms.values()) + " |",
              "| wall per run | " + " | ".join(f"{t['wall_ms']:.1f}" for t in forms.values()) + " |",
              "| convolutions' GFLOP/s | " + " | ".join(f"{conv_gflop / t['Conv'] * 1000:.0f}"
                                                          for t in forms.values()) + " |"]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
