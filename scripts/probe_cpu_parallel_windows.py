"""ONNX Runtime on this CPU: a batch of windows run a window per core at a time (the runner's
default, ``parallel_windows``) against the whole batch in one run with every core splitting each
operator, the two forms interleaved in one process (``stgcn-rt bench`` times its candidates one
after the other, and this CPU's speed moves by several per cent from minute to minute). Demo model,
fp32 (``--int8``: quantized in ONNX Runtime's form, as the bench quantizes it), dynamic-batch export,
the shipped real windows. Writes <out>/cpu-parallel-windows[-int8]-cpu<cores>-<date>.json.

    python scripts/probe_cpu_parallel_windows.py [--batch 8] [--rounds 5] [--seconds 8] [--int8] [--out .]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime

from stgcn_rt.data import real_windows
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier, usable_cores


def windows_per_s(call: Callable[[], object], batch: int, seconds: float) -> float:
    call()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        count += batch
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the two forms")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per form and round")
    parser.add_argument("--int8", action="store_true", help="the INT8 model in ONNX Runtime's form")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    loaded = load_checkpoint(make_demo_checkpoint(folder / "demo.pt"))
    path, _ = export_onnx(loaded, folder / "demo.onnx", ExportOptions(dynamic_batch=True), validate=False)
    windows = real_windows()
    if args.int8:
        from stgcn_rt.export.quantize import quantize_int8

        path = quantize_int8(path, folder / "demo.int8.onnx", windows, "minmax", target="onnxruntime")
    batch = np.resize(windows, (args.batch, *windows.shape[1:])).astype(np.float32)
    forms = {"window per core": OnnxClassifier(path), "one run": OnnxClassifier(path, parallel_windows=False)}
    rounds = []
    for round_ in range(args.rounds):
        row = {"round": round_, **{name: round(windows_per_s(lambda c=c: c.predict(batch), args.batch, args.seconds), 2)
                                   for name, c in forms.items()}}
        print(row, flush=True)
        rounds.append(row)
    report = {"cpu": platform.processor() or platform.machine(), "cores": usable_cores(),
              "onnxruntime": onnxruntime.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "precision": "int8" if args.int8 else "fp32",
              "command": f"python scripts/probe_cpu_parallel_windows.py --batch {args.batch} --rounds {args.rounds} "
                         f"--seconds {args.seconds}" + (" --int8" if args.int8 else ""),
              "note": "windows per second of predict on a batch, the forms interleaved in one process; 'window per "
                      "core': the runner's default (parallel_windows), 'one run': parallel_windows=False",
              "results": rounds}
    kind = "cpu-parallel-windows" + ("-int8" if args.int8 else "")
    out = Path(args.out) / f"{kind}-cpu{usable_cores()}-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
