"""How many cameras does this machine keep in real time? Runs `stgcn-rt run --realtime` on N copies
of the shipped clip (paced at its frame rate, like live cameras) and reports, per N: wall time over
clip duration (1.0 = kept up), window latency (submit to probabilities) p50/p99, and drops.

    python scripts/pipeline_capacity.py --cameras 1,2,3 --persons 1 [--model demo]
Writes docs/benchmarks/pipeline-cpu<cores>.{json,md}, one current report per machine size (rows of
other --persons and --stride runs of the same day are kept; git keeps the earlier reports).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stgcn_rt.data import demo_video
from stgcn_rt.files import atomic_output

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def model_for(persons: int, folder: Path) -> Path:
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

    loaded = load_checkpoint(make_demo_checkpoint(folder / "demo.pt"))
    return export_onnx(loaded, folder / f"demo{persons}.onnx", ExportOptions(persons=persons), validate=False)[0]


def run(cameras: int, persons: int, stride: int, model: Path, folder: Path) -> dict:
    events = folder / f"events-{persons}-{cameras}.jsonl"
    sources = []
    for i in range(cameras):
        copy = folder / f"cam{i}.mp4"
        if not copy.exists():
            copy.write_bytes(demo_video().read_bytes())
        sources += ["--source", str(copy)]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "stgcn_rt.cli", "run", *sources, "--model", str(model),
                           "--persons", str(persons), "--stride", str(stride), "--realtime",
                           "--events", str(events)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    latency = np.array([e["latency_ms"] for e in lines if e["kind"] == "prediction"])
    expected = cameras * sum(1 for frame in range(stride, 301, stride) if frame >= 150)  # full windows only
    duration = 300 / 29.97
    return {"cameras": cameras, "persons": persons, "stride": stride, "wall_over_duration": wall / duration,
            "windows": len(latency), "expected_windows": expected,
            "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
            "summary": proc.stdout.strip().splitlines()[:1 + cameras]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cameras", default="1,2")
    parser.add_argument("--persons", type=int, default=1)
    parser.add_argument("--stride", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the report")
    args = parser.parse_args()
    host = f"cpu{os.cpu_count()}"
    date = time.strftime("%Y-%m-%d")
    path = args.out / f"pipeline-{host}.json"
    fresh = {"date": date, "device": f"CPU, {os.cpu_count()} cores", "rows": []}
    report = json.loads(path.read_text()) if path.exists() else fresh
    if report["date"] != date:
        report = fresh
    with tempfile.TemporaryDirectory() as work:
        model = model_for(args.persons, Path(work))
        for cameras in (int(c) for c in args.cameras.split(",")):
            row = run(cameras, args.persons, args.stride, model, Path(work))
            row["command"] = (f"python scripts/pipeline_capacity.py --cameras {args.cameras} --persons {args.persons} "
                              f"--stride {args.stride}")
            print(f"{cameras} camera(s), M={args.persons}: wall/duration {row['wall_over_duration']:.2f}, "
                  f"windows {row['windows']}/{row['expected_windows']}, latency p50 {row['latency_p50_ms']:.0f} ms "
                  f"p99 {row['latency_p99_ms']:.0f} ms")
            key = (cameras, args.persons, args.stride)
            report["rows"] = [r for r in report["rows"] if (r["cameras"], r["persons"], r["stride"]) != key]
            report["rows"].append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Pipeline capacity on this machine ({report['device']}), {date}", "",
             "The shipped 10 s clip (30 fps) per camera, paced in real time (`stgcn-rt run --realtime`), "
             "MediaPipe pose in one worker process per core, the untrained demo network on ONNX Runtime (CPU), "
             "a window every STRIDE frames. Kept up = wall time within 10% of the clip's duration and every "
             "window classified.",
             "", "| cameras | persons (M) | stride | wall / clip duration | windows | window latency p50 | p99 "
             "| kept up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(report["rows"], key=lambda r: (r["persons"], -r["stride"], r["cameras"])):
        kept = r["wall_over_duration"] <= 1.1 and r["windows"] == r["expected_windows"]
        lines.append(f"| {r['cameras']} | {r['persons']} | {r['stride']} | {r['wall_over_duration']:.2f} | "
                     f"{r['windows']}/"
                     f"{r['expected_windows']} | {r['latency_p50_ms']:.0f} ms | {r['latency_p99_ms']:.0f} ms | "
                     f"{'yes' if kept else 'no'} |")
    lines += ["", "Commands: " + "; ".join(sorted({f"`{r['command']}`" for r in report["rows"]}))]
    with atomic_output(args.out / f"pipeline-{host}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/pipeline-{host}.{{json,md}}")


if __name__ == "__main__":
    main()
