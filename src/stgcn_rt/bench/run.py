"""One benchmark run: every candidate side by side, then the multi-camera designs, in one process."""

from __future__ import annotations

import copy
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt import __version__
from stgcn_rt.bench import cameras as camera_sim
from stgcn_rt.bench.candidates import available, fp32_onnx, torch_label
from stgcn_rt.bench.measure import latency, throughput
from stgcn_rt.bench.pipeline import pipeline_rows
from stgcn_rt.bench.pose import pose_rows
from stgcn_rt.errors import StgcnError, first_line, one_line
from stgcn_rt.runtime.configurations import DEFAULT_FAST_MODE, DEFAULT_SCHEDULER_BACKEND, configuration
from stgcn_rt.runtime.heap import startup_objects_frozen
from stgcn_rt.window import FRAMES


@dataclass
class BenchConfig:
    model: str = "demo"
    engine: Path | None = None
    persons: int = 1
    backends: list[str] | None = None
    batches: list[int] = field(default_factory=lambda: [1, 8, 32, 128, 512])
    cameras: list[int] = field(default_factory=lambda: [1, 4, 16, 64, 256, 1024])
    stride: int = 5
    iterations: int = 100
    warmup: int = 10
    seconds: float = 3.0  # per throughput point and per camera count
    threads: int | None = None  # ONNX Runtime's CPU cores: threads for one window, or windows at a time
    p99_limit_ms: float = 100.0  # a camera count is served when p99 stays under this, nothing dropped
    scheduler_backend: str = DEFAULT_SCHEDULER_BACKEND  # on a GPU: one of SCHEDULER_BACKENDS
    cpu_max_batch: int = 64  # CPU backends skip larger batches in a GPU run (minutes each, no information)
    server: str | None = None  # a Triton address (http:// or grpc://) timed beside the in-process backends
    clients: list[int] = field(default_factory=lambda: [1, 4, 16])  # concurrent clients, with a server
    pose_batches: list[int] = field(default_factory=list)  # the pose section's batches and camera counts; [] skips it
    pipeline_cameras: list[int] = field(default_factory=list)  # the end-to-end section's camera counts; [] skips it
    pipeline_poses: list[str] = field(default_factory=lambda: ["blazepose", "mediapipe"])
    pipeline_p99_ms: float = 250.0  # frame to event
    pipeline_lanes: list[int] = field(default_factory=lambda: [1])  # blazepose's lanes (a row set for each)
    command: str = "stgcn-rt bench"  # as given, for the report (the CLI's, however it was started)


def environment(command: str) -> dict[str, Any]:
    import onnxruntime
    import torch

    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "stgcn_rt": __version__,
        "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": __import__("os").cpu_count(),
        "command": command,
    }
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
        try:
            import subprocess

            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env["device"] = f"CPU ({env['cpu']}, {env['cpu_count']} cores)"
    return env


def load_model(name: str, work: Path):  # noqa: ANN201 - LoadedModel
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint

    if name == "demo":
        return load_checkpoint(make_demo_checkpoint(work / "demo.pt"))
    return load_checkpoint(name)


def windows_for(persons: int) -> np.ndarray:
    from stgcn_rt.data import real_windows
    from stgcn_rt.window import fit_persons

    return fit_persons(real_windows(), persons)


def run_bench(config: BenchConfig, progress: Any = None) -> dict[str, Any]:
    """The report of one run. The files it makes (the demo checkpoint, the exports) live in a temporary
    folder that goes with the run."""
    with tempfile.TemporaryDirectory(prefix="stgcn-rt-bench-") as folder:
        return _run_in(Path(folder), config, progress)


def _run_in(work: Path, config: BenchConfig, progress: Any) -> dict[str, Any]:
    import torch

    loaded = load_model(config.model, work)
    windows = windows_for(config.persons)
    candidates, skipped = ([], []) if config.backends == [] else available(
        loaded, config.persons, config.backends, windows, work, config.engine, config.threads, config.server)
    if config.backends != [] and not candidates and not (config.cameras or config.server):
        raise StgcnError(f"none of the backends asked for can run here ({'; '.join(skipped)}): pick others with "
                         "--backends, or run on a machine that has what they need")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.__dict__.items() if k != "command"}
    report: dict[str, Any] = {"environment": environment(config.command), "config": settings, "skipped": skipped,
                              "latency": [], "throughput": [], "cameras": []}
    tick = progress or (lambda text: None)
    try:  # the candidates are closed however the run ends (a scheduler that cannot start, say)
        with startup_objects_frozen():  # as the pipeline and the server run: no full collection walks the models
            for candidate in candidates:
                measure_candidate(candidate, config, windows, report, tick)
        if config.cameras or config.server:
            scheduler = scheduler_or_skip(config, loaded, work, report)
            if scheduler is not None:
                classifier, label = scheduler
                try:
                    with startup_objects_frozen():
                        report["cameras"] = camera_rows(config, loaded, windows, classifier, label, tick)
                        if config.server:
                            report["clients"] = client_rows(config, windows, classifier, label, tick)
                finally:
                    classifier.close()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if config.pose_batches:
            report["pose"], missing = pose_rows(device, config.pose_batches, config.seconds, tick)
            report["skipped"] += missing
        if config.pipeline_cameras:
            model, fast = pipeline_model(config, loaded, work, device)
            report["pipeline"], missing = pipeline_rows(
                model, device, config.pipeline_poses, config.pipeline_cameras, config.stride, config.persons, work,
                tick, config.pipeline_p99_ms, fast, config.pipeline_lanes)
            report["skipped"] += missing
    finally:
        for candidate in candidates:
            candidate.close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return report


def pipeline_model(config: BenchConfig, loaded: Any, work: Path, device: str) -> tuple[Path, str | None]:
    """What the end-to-end section classifies with: on a GPU the checkpoint with ``--fast`` (the
    fastest measured), on the CPU its ONNX export through ONNX Runtime; and the fast mode."""
    if device == "cpu":
        return fp32_onnx(loaded, config.persons, work), None
    return (work / "demo.pt" if config.model == "demo" else Path(config.model)), DEFAULT_FAST_MODE


def measure_candidate(candidate: Any, config: BenchConfig, windows: np.ndarray, report: dict[str, Any],
                      tick: Any) -> None:
    """Latency and throughput rows of one candidate into ``report``. A measurement that raises (out of
    memory at a large batch, a kernel that fails to build) becomes one line under "skipped" and the
    run goes on: without a latency row the candidate is dropped, a failed batch size is left out."""
    import torch

    label = f"{candidate.name} {candidate.precision}"
    try:
        tick(f"latency: {label}")
        stats = latency(candidate, windows, config.iterations, config.warmup)
    except Exception as exc:
        report["skipped"].append(f"{label}: failed while timing batch 1: {one_line(exc)}")
        return
    report["latency"].append({"backend": candidate.name, "precision": candidate.precision,
                              "device": candidate.device, "baseline": candidate.baseline, **stats})
    for batch in config.batches:
        if candidate.batch_sizes and batch not in candidate.batch_sizes:
            continue
        if candidate.device == "cpu" and torch.cuda.is_available() and batch > config.cpu_max_batch:
            report["skipped"].append(f"{label} batch {batch}: CPU backend in a GPU run")
            continue
        tick(f"throughput: {label} batch {batch}")
        try:
            rate = throughput(candidate, windows, batch, config.seconds)
        except Exception as exc:
            report["skipped"].append(f"{label} batch {batch}: failed: {one_line(exc)}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what an out-of-memory batch left behind
            continue
        report["throughput"].append({"backend": candidate.name, "precision": candidate.precision,
                                     "batch": batch, **rate})


def camera_rows(config: BenchConfig, loaded: Any, windows: np.ndarray, classifier: Any, batched: str, tick: Any
                ) -> list[dict[str, Any]]:
    """Thread-per-camera (the roadmap) vs the batching scheduler on ``classifier``, stopping each design at
    its first failure."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        model = copy.deepcopy(loaded.model).to(device).eval()

        def run_one(window: np.ndarray, stream: Any) -> Any:
            with torch.no_grad(), torch.cuda.stream(stream):
                out = torch.softmax(model(torch.tensor(window).to(device)), dim=1).cpu()
            return out

        def make_stream() -> Any:
            return torch.cuda.Stream()

        threaded = "thread per camera: eager fp32, batch 1, a CUDA stream each (roadmap)"
    else:
        def run_one(window: np.ndarray, stream: Any) -> Any:
            return classifier.logits(window)

        def make_stream() -> Any:
            return None

        threaded = "thread per camera: onnxruntime cpu, batch 1"
    rows = []
    alive = {"thread": True, "scheduler": True}
    for count in config.cameras:
        for design, label in (("thread", threaded), ("scheduler", batched)):
            if not alive[design]:
                continue
            tick(f"cameras: {count} x {design}")
            if design == "thread":
                result = camera_sim.thread_design(run_one, make_stream, count, config.stride, config.seconds, windows,
                                                  config.p99_limit_ms)
            else:
                result = camera_sim.scheduler_design(classifier, count, config.stride, config.seconds, windows,
                                                     p99_limit_ms=config.p99_limit_ms)
            rows.append({"design": design, "label": label, "cameras": count, **result})
            alive[design] = result["ok"]
    return rows


def scheduler_or_skip(config: BenchConfig, loaded: Any, work: Path, report: dict[str, Any]
                      ) -> tuple[Any, str] | None:
    """:func:`in_process_backend`, or None with the reason under the report's "skipped" where it cannot
    start here (the GPU kernels without a new enough triton, say): the rows measured so far are
    kept. With no rows at all the run fails in one line instead."""
    import torch

    try:
        return in_process_backend(config, loaded, work)
    except Exception as exc:  # a backend that cannot start here: torch, triton and our own errors alike
        on_gpu = torch.cuda.is_available()
        which = f" on {config.scheduler_backend}" if on_gpu else ""
        reason = f"the batching scheduler{which} cannot start here: {first_line(exc)}"
        hint = "pick another with --scheduler-backend" if on_gpu else "see stgcn-rt check"
        if not report["latency"]:
            raise StgcnError(f"{reason}; {hint}") from exc
        part = "camera test and clients" if config.server else "camera test"
        report["skipped"].append(f"{part}: {reason} ({hint})")
        return None


def in_process_backend(config: BenchConfig, loaded: Any, work: Path) -> tuple[Any, str]:
    """What the in-process batching scheduler runs here, ready (compiled, captured), and its label; on
    the CPU, the ONNX Runtime candidates' export in ``work`` (made now if none of them ran)."""
    import torch

    if torch.cuda.is_available():
        from stgcn_rt.runtime.backends.torch_runner import TorchClassifier

        options = configuration(config.scheduler_backend).options
        classifier = TorchClassifier(loaded, device="cuda", seq_len=FRAMES, persons=config.persons, **options)
        classifier.warm_up(256)  # compile and capture every batch bucket before the clock starts
        return classifier, f"batching scheduler: {torch_label(**options)}, {options['precision']}"
    from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier

    return OnnxClassifier(fp32_onnx(loaded, config.persons, work), threads=config.threads), \
        "batching scheduler: onnxruntime cpu"


def client_rows(config: BenchConfig, windows: np.ndarray, classifier: Any, label: str, tick: Any
                ) -> list[dict[str, Any]]:
    """N concurrent batch-1 clients: through the Triton server at ``config.server`` and through the
    in-process scheduler on ``classifier`` (the local model), side by side."""
    from stgcn_rt.bench.clients import closed_loop, remote_clients, scheduler_clients
    from stgcn_rt.urls import mask_url

    rows = []
    for count in config.clients:
        tick(f"clients: {count} x triton")
        rows.append({"design": "triton", "label": f"Triton server {mask_url(str(config.server))}",
                     **closed_loop(remote_clients(str(config.server)), count, config.seconds, windows)})
        tick(f"clients: {count} x scheduler")
        make, scheduler = scheduler_clients(classifier)
        try:
            rows.append({"design": "scheduler", "label": f"in process, {label}",
                         **closed_loop(make, count, config.seconds, windows)})
        finally:
            scheduler.close()
    return rows


def capacity(rows: list[dict[str, Any]], design: str) -> int:
    return max((r["cameras"] for r in rows if r["design"] == design and r["ok"]), default=0)
