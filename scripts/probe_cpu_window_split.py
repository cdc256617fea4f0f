"""ONNX Runtime on a many-core CPU: a batch split into k parts run at a time, each part in its own
session with cores / k threads, against the whole batch in one run with every core on each operator
(the runner's form below ``window_workers`` windows). Answers whether the runner's rule (a window per
core from a batch of as many windows as cores, else one run) leaves throughput behind on machines with
more cores than a batch has windows. Demo model, fp32, the runner's CPU rewrites, dynamic-batch export,
the shipped real windows; the forms interleaved, ``--rounds`` times per batch size. Writes
<out>/cpu-window-split-cpu<cores>-<date>.json.

    python scripts/probe_cpu_window_split.py [--batches 1,2,4,8,16,32,64] [--rounds 2] [--seconds 2] [--out .]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from measure_cpu_fp32_ceiling import cpu_name  # this folder's scripts, on the path when run as a script
from probe_cpu_parallel_windows import windows_per_s

from stgcn_rt.data import real_windows
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
from stgcn_rt.runtime.backends.onnxruntime_kernels import rewritten_for_cpu
from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier, _session_options, usable_cores


class SplitBatch:
    """A batch cut into ``parts`` pieces, each run by its own session of ``threads`` threads, at once."""

    def __init__(self, model: str | bytes, parts: int, threads: int) -> None:
        self.sessions = [ort.InferenceSession(model, _session_options(ort, threads),
                                              providers=["CPUExecutionProvider"],
                                              disabled_optimizers=["NhwcTransformer"]) for _ in range(parts)]
        self.input_name = self.sessions[0].get_inputs()[0].name
        self.pool = ThreadPoolExecutor(parts)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        pieces = np.array_split(batch, len(self.sessions))
        return np.concatenate(list(self.pool.map(
            lambda i: self.sessions[i].run(None, {self.input_name: pieces[i]})[0], range(len(pieces)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the forms per batch size")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per form and round")
    parser.add_argument("--out", default=".", help="folder for the JSON")
    args = parser.parse_args()
    cores = usable_cores()
    folder = Path(tempfile.mkdtemp())
    loaded = load_checkpoint(make_demo_checkpoint(folder / "demo.pt"))
    path, _ = export_onnx(loaded, folder / "demo.onnx", ExportOptions(dynamic_batch=True), validate=False)
    model = rewritten_for_cpu(path, False, True, True)[0]
    windows = real_windows()
    one_run = OnnxClassifier(path, parallel_windows=False)
    results = []
    for size in (int(b) for b in args.batches.split(",")):
        batch = np.resize(windows, (size, *windows.shape[1:])).astype(np.float32)
        forms: dict[str, Callable[[], object]] = {f"one run x{cores}": lambda b=batch: one_run.logits(b)}
        parts = 2
        while parts <= min(size, cores):
            split = SplitBatch(model, parts, cores // parts)
            forms[f"{parts} at a time x{cores // parts}"] = lambda s=split, b=batch: s(b)
            parts *= 2
        for round_ in range(args.rounds):
            row = {"batch": size, "round": round_,
                   **{name: round(windows_per_s(call, size, args.seconds), 1) for name, call in forms.items()}}
            print(json.dumps(row), flush=True)
            results.append(row)
    report = {"cpu": cpu_name(), "cores": cores, "onnxruntime": ort.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": f"python scripts/probe_cpu_window_split.py --batches {args.batches} --rounds {args.rounds} "
                         f"--seconds {args.seconds}",
              "note": "windows per second; 'one run xN': the whole batch in one run on N threads "
                      "(parallel_windows=False); 'k at a time xT': the batch in k parts, each in its own session of "
                      "T threads, all at once",
              "results": results}
    out = Path(args.out) / f"cpu-window-split-cpu{cores}-{time.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
