"""Why the ONNX Runtime runner disables ORT's NhwcTransformer: batch-1 latency of the demo network's
INT8 model (stgcn-rt quantize --target onnxruntime) exported with a static and with a dynamic batch,
with the transformer on and off, and fp32 beside them, on this machine's CPU. Sessions are timed one
after another (interleaved sessions' spinning thread pools would fight over the cores).
Writes docs/benchmarks/ort-int8-layout-<device>-<date>.{json,md}.

    python scripts/measure_ort_int8_layout.py
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

from stgcn_rt.data import real_windows
from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
from stgcn_rt.export.quantize import quantize_int8
from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def median_ms(path: Path, window: np.ndarray, disabled: list[str], runs: int = 20) -> float:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=disabled)
    name = session.get_inputs()[0].name
    times = []
    for _ in range(runs + 3):
        start = time.perf_counter()
        session.run(None, {name: window})
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]) * 1000)


def main() -> None:
    windows = real_windows().astype(np.float32)
    work = Path(tempfile.mkdtemp(prefix="stgcn-rt-layout-"))
    loaded = load_checkpoint(make_demo_checkpoint(work / "demo.pt"))
    rows = []
    for batch in ("static", "dynamic"):
        fp32, _ = export_onnx(loaded, work / f"{batch}.onnx", ExportOptions(dynamic_batch=batch == "dynamic"),
                              validate=False)
        int8 = quantize_int8(fp32, work / f"{batch}-int8.onnx", windows, "minmax", target="onnxruntime")
        for precision, path in (("fp32", fp32), ("int8", int8)):
            for transformer, disabled in (("on", []), ("off", ["NhwcTransformer"])):
                rows.append({"batch_axis": batch, "precision": precision, "nhwc_transformer": transformer,
                             "p50_ms": median_ms(path, windows[:1], disabled)})
                print(rows[-1], flush=True)
    device = f"cpu{os.cpu_count()}"
    stem = f"ort-int8-layout-{device}-{time.strftime('%Y-%m-%d')}"
    env = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "onnxruntime": ort.__version__,
           "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "command": "python scripts/measure_ort_int8_layout.py"}
    (OUT / f"{stem}.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2) + "\n")
    lines = [f"# ONNX Runtime INT8 and the NhwcTransformer: CPU ({env['cpu']}, {env['cpu_count']} cores)", "",
             f"{env['date']}; onnxruntime {env['onnxruntime']}. Command: `{env['command']}`. Demo network, "
             "M=1, batch 1, median of 20 runs after 3 warm-up runs.", "",
             "| batch axis | precision | NhwcTransformer | p50 ms |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['batch_axis']} | {r['precision']} | {r['nhwc_transformer']} | {r['p50_ms']:.1f} |" for r in rows]
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / stem}.json and .md")


if __name__ == "__main__":
    main()
