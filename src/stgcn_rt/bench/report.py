"""Benchmark output: raw JSON, a Markdown table with ratios against the baseline, PNG plots."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from stgcn_rt.bench.cores import PARTS
from stgcn_rt.bench.run import capacity
from stgcn_rt.files import atomic_output
from stgcn_rt.window import FRAMES, JOINTS

#: the JSON's required shape; tests validate reports against it
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["environment", "config", "skipped", "latency", "throughput", "cameras"],
    "properties": {
        "environment": {"type": "object", "required": ["date", "device", "torch", "onnxruntime"]},
        "latency": {"type": "array", "items": {"type": "object", "required": [
            "backend", "precision", "device", "baseline", "with_copies"]}},
        "throughput": {"type": "array", "items": {"type": "object", "required": [
            "backend", "precision", "batch", "windows_per_s"]}},
        "cameras": {"type": "array", "items": {"type": "object", "required": [
            "design", "cameras", "p50_ms", "p99_ms", "dropped", "ok"]}},
        "clients": {"type": "array", "items": {"type": "object", "required": [
            "design", "clients", "windows_per_s", "p50_ms", "p99_ms", "errors"]}},
        "pose": {"type": "array", "items": {"type": "object", "required": [
            "backend", "stage", "precision", "cuda_graphs", "batch", "unit", "per_s"]}},
        "pipeline": {"type": "array", "items": {"type": "object", "required": [
            "pose", "classifier", "cameras", "windows", "expected_windows", "p50_ms", "p99_ms", "to_pose_p50_ms",
            "to_pose_p99_ms", "classify_p99_ms", "pose_ms", "frames_dropped", "persons_found", "ok"]}},
    },
}


def _key(row: dict[str, Any]) -> str:
    return f"{row['backend']} {row['precision']}"


def cameras(count: int) -> str:
    return f"{count} camera" + ("" if count == 1 else "s")


def markdown(report: dict[str, Any], stem: str, plotted: bool = True) -> str:
    env = report["environment"]
    base = next((r for r in report["latency"] if r["baseline"]), None)
    base_p50 = base["with_copies"]["p50_ms"] if base else None
    lines = [f"# stgcn-rt bench: {env['device']}", "",
             f"{env['date']}; torch {env['torch']}, onnxruntime {env['onnxruntime']}, stgcn-rt {env['stgcn_rt']}"
             + (f", driver {env.get('driver')}" if env.get("driver") else "") + ".",
             f"Command: `{env.get('command') or 'stgcn-rt bench'}`; persons M={report['config']['persons']}, "
             f"T={FRAMES}, V={JOINTS}."
             + (" Ratios are against the roadmap's eager fp32 baseline measured in this run." if base else "")]
    if report["latency"]:
        lines += _classifier_sections(report, base, base_p50)
    rows = report["cameras"]
    if rows:
        lines += ["", f"## Cameras at 25 fps, a window every {report['config']['stride']} frames", "",
                  f"| design | cameras | windows/s | p50 ms | p99 ms | dropped | "
                  f"p99 < {report['config']['p99_limit_ms']:g} ms, none dropped |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['label']} | {r['cameras']} | {r['windows_per_s']:,.0f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['dropped']} | {'yes' if r['ok'] else 'no'} |")
        thread, scheduler = (cameras(capacity(rows, design)) for design in ("thread", "scheduler"))
        lines += ["", f"Capacity: thread per camera {thread}, batching scheduler {scheduler} "
                      f"(of those tried: {report['config']['cameras']}; "
                      "a design is not tried further after its first failure)."]
        lines += [f"{r['label']} at {r['cameras']} cameras: {r['errors']} windows failed with an error "
                  f"(counted as dropped), the first: {r['first_error']}" for r in rows if r.get("errors")]
    if report.get("clients"):
        lines += ["", "## Concurrent clients (each sends one window and waits for the answer)", "",
                  "| design | clients | windows/s | p50 ms | p99 ms | errors |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in report["clients"]:
            lines.append(f"| {r['label']} | {r['clients']} | {r['windows_per_s']:,.0f} | {r['p50_ms']:.2f} | "
                         f"{r['p99_ms']:.2f} | {r['errors']} |")
    lines += _pose_section(report) + _pipeline_section(report)
    if report["skipped"]:
        lines += ["", "Not measured here: " + "; ".join(report["skipped"]) + "."]
    charts = (["latency", "throughput"] if report["latency"] else []) + (["cameras"] if report["cameras"] else [])
    lines += ["", ("Plots: " + ", ".join(f"`{stem}-{chart}.png`" for chart in charts) + "; " if plotted
                   else "No plots (matplotlib, extra [bench], is not installed); ") + f"raw figures: `{stem}.json`."]
    return "\n".join(lines) + "\n"


def _classifier_sections(report: dict[str, Any], base: dict[str, Any] | None, base_p50: float | None) -> list[str]:
    """Batch-1 latency and throughput of every classifier backend, against the baseline."""
    # the column of windows already on the device only where a GPU backend measured one
    on_device = any(r.get("device_only") for r in report["latency"])
    lines = ["", "## Batch-1 latency (ms)", "",
             "Each call takes one host window and returns its probabilities on the host, copies included."
             + (" \"Input on device\": the window already on the GPU and the output left there, timed with a "
                 "synchronisation; runners with CUDA graphs still copy the window into the graph's input and the "
                 "output out of it on the GPU." if on_device else ""), "",
              "| backend | precision | mean ± std | p50 | p99 |" + (" p50 input on device |" if on_device else "")
              + " speed-up (p50) |",
              "| --- | --- | --- | --- | --- |" + (" --- |" if on_device else "") + " --- |"]
    for r in report["latency"]:
        w = r["with_copies"]
        dev = r.get("device_only")
        cells = [r["backend"], r["precision"], f"{w['mean_ms']:.3f} ± {w['std_ms']:.3f}", f"{w['p50_ms']:.3f}",
                 f"{w['p99_ms']:.3f}"] + ([f"{dev['p50_ms']:.3f}" if dev else "-"] if on_device else [])
        cells.append(f"{base_p50 / w['p50_ms']:.2f}x" if base_p50 else "-")
        lines.append("| " + " | ".join(cells) + " |")
    batches = sorted({r["batch"] for r in report["throughput"]})
    base_tp = {r["batch"]: r["windows_per_s"] for r in report["throughput"] if base and _key(r) == _key(base)}
    lines += ["", "## Throughput (windows/s; ratio to the baseline at the same batch)", "",
              "| backend | precision | " + " | ".join(f"batch {b}" for b in batches) + " |",
              "| --- | --- | " + " | ".join("---" for _ in batches) + " |"]
    for key in dict.fromkeys(_key(r) for r in report["throughput"]):
        measured = {r["batch"]: r for r in report["throughput"] if _key(r) == key}
        cells = []
        for b in batches:
            row = measured.get(b)
            if row is None:
                cells.append("-")
            else:
                ratio = f" ({row['windows_per_s'] / base_tp[b]:.1f}x)" if b in base_tp else ""
                cells.append(f"{row['windows_per_s']:,.0f}{ratio}")
        first = next(iter(measured.values()))  # backend and precision as measured: either may hold spaces
        lines.append(f"| {first['backend']} | {first['precision']} | " + " | ".join(cells) + " |")
    return lines


def plots(report: dict[str, Any], folder: Path, stem: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[Path] = []
    device = report["environment"]["device"]
    lat = report["latency"]
    if lat:
        fig, ax = plt.subplots(figsize=(10, 0.8 * len(lat) + 2))
        labels = [_wrapped(_key(r)) for r in lat]  # whole names, over lines as needed
        ax.barh(labels, [r["with_copies"]["p50_ms"] for r in lat], color="tab:blue", label="p50, host in/out")
        ax.errorbar([r["with_copies"]["p99_ms"] for r in lat], labels, fmt="k|", markersize=12, label="p99")
        p50s = [r["with_copies"]["p50_ms"] for r in lat]
        if max(p50s) / min(p50s) > 20:  # a log axis only when the spread needs it; its bars start at a floor
            ax.set_xscale("log")
            ax.set_xlim(left=min(p50s) / 3)
        ax.set_xlabel("batch-1 latency (ms" + (", log scale)" if max(p50s) / min(p50s) > 20 else ")"))
        _legend_below(ax)
        ax.set_title(_wrapped(f"Latency per backend, {device}", 60))
        written.append(_save(fig, folder / f"{stem}-latency.png"))
        fig, ax = plt.subplots(figsize=(9, 6))
        for key in dict.fromkeys(_key(r) for r in report["throughput"]):
            rows = [r for r in report["throughput"] if _key(r) == key]
            ax.plot([r["batch"] for r in rows], [r["windows_per_s"] for r in rows], marker="o", label=key)
        _log_log(ax, "batch size", "windows per second", _wrapped(f"Throughput vs batch size, {device}", 60))
        written.append(_save(fig, folder / f"{stem}-throughput.png"))
    if report["cameras"]:
        fig, ax = plt.subplots(figsize=(8, 5))
        for design in ("thread", "scheduler"):
            rows = [r for r in report["cameras"] if r["design"] == design]
            if rows:
                ax.plot([r["cameras"] for r in rows], [min(r["p99_ms"], 1e5) for r in rows], marker="o",
                        label=rows[0]["label"])
        limit = report["config"]["p99_limit_ms"]
        ax.axhline(limit, color="red", linestyle="--", label=f"{limit:g} ms")
        _log_log(ax, "cameras (25 fps)", "p99 latency (ms)", _wrapped(f"p99 latency vs cameras, {device}", 60))
        written.append(_save(fig, folder / f"{stem}-cameras.png"))
    return written


def _pose_section(report: dict[str, Any]) -> list[str]:
    """BlazePose's networks and whole graph beside MediaPipe's solution (crops or frames a second)."""
    rows = report.get("pose")
    if not rows:
        return []
    batches = sorted({r["batch"] for r in rows})
    reference = next((r["per_s"] for r in rows if r["backend"].startswith("mediapipe")), None)
    lines = ["", "## Pose (items a second; whole graph: frames a second across that many cameras)", "",
             "BlazePose's networks on batches of random crops, input resident; its whole graph (upload, "
             "crops, both networks, tracking and smoothing on the host) on the shipped clip's frames for that "
             "many cameras at once, frames in page-locked shared memory as the pipeline's decoders write them; "
             "MediaPipe's own solution on one CPU process."
             + (" Ratios: to MediaPipe's frames a second." if reference else ""), "",
             "| backend | stage | precision | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in batches) + " |"]

    def key_of(row: dict[str, Any]) -> tuple[str, str, str]:  # a table row: how it ran beside the precision
        return row["backend"], row["stage"], (row["precision"] + (", CUDA graphs" if row.get("cuda_graphs") else "")
                                              + (", compiled" if row.get("compiled") else ""))

    for key in dict.fromkeys(key_of(r) for r in rows):
        measured = {r["batch"]: r for r in rows if key_of(r) == key}
        cells = []
        for b in batches:
            row = measured.get(b)
            ratio = f" ({_ratio(row['per_s'] / reference)})" if row and reference and row["unit"] == "frames" else ""
            cells.append(f"{row['per_s']:,.0f} {row['unit']}{ratio}" if row else "-")
        lines.append("| " + " | ".join(key) + " | " + " | ".join(cells) + " |")
    return lines


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:,.0f}x"


def _pipeline_section(report: dict[str, Any]) -> list[str]:
    """Cameras through the whole pipeline, per pose backend, and each one's capacity."""
    rows = report.get("pipeline")
    if not rows:
        return []
    limit = report["config"]["pipeline_p99_ms"]
    lines = ["", f"## Whole pipeline: cameras at 25 fps, 640x480, M={report['config']['persons']}, a window every "
             f"{report['config']['stride']} frames",
             "", "Decode (worker processes) -> pose -> windows -> ST-GCN -> events, as `stgcn-rt run --realtime` "
             "runs it on copies of the shipped clip paced like live cameras. Latency: from a window's last frame "
             "leaving its camera to its prediction line; of it, until that frame's pose was back (p50), "
             "classification (a window's wait for the classifier and its batch's run, p99) and pose itself (a "
             "step's mean: every camera's frame with BlazePose, one frame in a worker with MediaPipe), with the "
             "frames a step posed together (near the cameras where pose is what falls behind, far under them "
             "where it waits for frames). Cores busy while the cameras ran: the decoding processes, pose's own "
             "processes (BlazePose's, MediaPipe's workers; where pose runs in the pipeline's process, it counts "
             f"there), the pipeline's process (one interpreter) and the host (of {_cpu_count(report)}). Start: the "
             "seconds before the cameras started (loading and warming up the classifier, then pose: loading, "
             "compiling, warming up), and pose's part of it.", "",
             f"| pose | classifier | cameras | windows | frame-to-event p50 ms | p99 ms | frame to pose p50 ms | "
             f"classification p99 ms | pose ms | frames a pose step | cores: decoding / pose / pipeline / host | "
             f"frames dropped | person found | start s: all / pose | every window, p99 < {limit:g} ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {_pose_label(r)} | {r['classifier']} | {r['cameras']} | "
                     f"{r['windows']}/{r['expected_windows']} | "
                     f"{r['p50_ms']:,.0f} | {r['p99_ms']:,.0f} | {r['to_pose_p50_ms']:,.0f} | "
                     f"{r['classify_p99_ms']:,.0f} | {r['pose_ms']:,.0f} | "
                     f"{format(r['pose_batch'], ',.0f') if 'pose_batch' in r else '-'} | {_cores(r.get('cores'))} | "
                     f"{r['frames_dropped']} | {r['persons_found']:.0%} | {_start(r)} | "
                     f"{'yes' if r['ok'] else 'no'} |")
    kept = {pose: max([r["cameras"] for r in rows if _pose_label(r) == pose and r["ok"]], default=0)
            for pose in dict.fromkeys(_pose_label(r) for r in rows)}
    lines += ["", "Capacity: " + ", ".join(f"{pose} {cameras(count)}" for pose, count in kept.items())
              + f" (of those tried: {report['config']['pipeline_cameras']}; a pose backend is not tried "
              "further after its first failure)."]
    return lines


def _start(row: dict[str, Any]) -> str:
    """A row's start-up, all and pose's share, as the table gives them ('-' in reports from before)."""
    if row.get("start_s") is None:
        return "-"
    return f"{row['start_s']:.0f} / {row['pose_ready_s']:.0f}"


def _cores(cores: dict[str, float] | None) -> str:
    """A row's cores busy by part, as the table gives them."""
    return " / ".join(f"{cores[part]:.1f}" for part in PARTS) if cores else "-"


def _cpu_count(report: dict[str, Any]) -> str:
    count = report.get("environment", {}).get("cpu_count")
    return f"{count} cores" if count else "its cores"


def _pose_label(row: dict[str, Any]) -> str:
    """A pipeline row's pose backend as the tables name it: with its precision, its lanes if several,
    CUDA graphs where its stages ran through them (compiled or not), and its own process where it had one."""
    lanes = row.get("pose_lanes") or 1
    return (row["pose"] + (f" {row['pose_precision']}" if row.get("pose_precision") else "")
            + (f", {lanes} lanes" if lanes > 1 else "") + (", CUDA graphs" if row.get("pose_graphs") else "")
            + (", compiled" if row.get("pose_compiled") else "")
            + (", own process" if row.get("pose_process") else ""))


def _log_log(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(ax)
    ax.set_title(title)


def _wrapped(text: str, width: int = 34) -> str:
    return textwrap.fill(text, width)


def _legend_below(ax: Any) -> None:
    """The legend under the axes, never over the data, one entry per line with whole names."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")  # the figure grows to hold the legend
    plt.close(fig)
    return path


def write(report: dict[str, Any], folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with atomic_output(folder / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    paths.append(folder / f"{stem}.json")
    images = plots(report, folder, stem)
    with atomic_output(folder / f"{stem}.md") as tmp:
        tmp.write_text(markdown(report, stem, plotted=bool(images)))
    paths.append(folder / f"{stem}.md")
    return paths + images
