"""The ``stgcn-rt`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from stgcn_rt import __version__
from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.runtime.configurations import (
    ALIASES,
    DEFAULT_FAST_MODE,
    DEFAULT_SCHEDULER_BACKEND,
    FAST_MODES,
    NAMES,
    SCHEDULER_BACKENDS,
    configuration,
)
from stgcn_rt.window import FRAMES


class Context:
    debug = False
    #: the arguments the command line was given (for the events file's run line)
    argv: list[str] = []


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """One line and a non-zero exit for every failure; the traceback only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise  # argument mistakes: OneLineErrorGroup words them
        except StgcnError as exc:
            if Context.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            exit_quietly_after_broken_pipe()
        except Exception as exc:  # an unexpected failure is still one line without --debug
            if Context.debug:
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {first_line(exc, '')[:300]} "
                       "(rerun with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def exit_quietly_after_broken_pipe() -> None:
    """Whoever read stdout stopped (stgcn-rt info m.onnx | head -3): no error to tell, nor at exit's flush."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


# click >= 8.2 raises this for a bare command that shows its help; older click shows it and exits itself
SHOWS_HELP: tuple[type[click.UsageError], ...] = tuple(
    getattr(click.exceptions, name) for name in ("NoArgsIsHelpError",) if hasattr(click.exceptions, name))


class OneLineErrorGroup(click.Group):
    """Argument mistakes end like every other failure: one ``error:`` line, exit 2, no usage block."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        Context.argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except SHOWS_HELP as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "stgcn-rt"
            click.echo(f"error: {exc.format_message()} ({where} --help explains every option)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            exit_quietly_after_broken_pipe()
        sys.exit(code if isinstance(code, int) else 0)


def class_names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    """Option callback: "normal,shoplifting" -> ["normal", "shoplifting"], at least two names."""
    if value is None:
        return None
    names = [c.strip() for c in value.split(",")]
    if len(names) < 2 or not all(names):
        raise click.BadParameter("give at least two comma-separated class names, e.g. normal,shoplifting")
    return names


def step(index: int, total: int, text: str) -> None:
    click.echo(f"[{index}/{total}] {text}", err=True)


def echo_err(text: str) -> None:
    click.echo(text, err=True)


layout_option = click.option("--layout", default=None, metavar="NAME",
                             help="Skeleton layout: mediapipe33 (default), openpose18, coco17, ntu25.")
center_option = click.option(
    "--center", type=int, default=None, metavar="J",
    help="Centre joint of the graph partition (layout default; ignored when the checkpoint stores A).")
motion_option = click.option(
    "--motion", type=click.Choice(["forward", "central"]), default=None,
    help="Motion stream input: forward x[t]-x[t-1] (default, the roadmap) or central "
         "(the reference two-stream model).")
classes_option = click.option(
    "--classes", default=None, metavar="A,B,...", callback=class_names,
    help="Class names in output order (default: stored in the checkpoint, else normal,shoplifting).")
fast_option = click.option(
    "--fast", type=click.Choice(list(FAST_MODES)), is_flag=False, flag_value=DEFAULT_FAST_MODE, default=None,
    help="With --device cuda and a .pt checkpoint, the fastest PyTorch backends, fp16 with CUDA graphs: "
         "--fast (or --fast kernels) runs this project's GPU kernels (fastest measured: per window, per "
         "batch and in cameras), --fast kernels-fp8 the same with the temporal convolutions on fp8 operands "
         "(Hopper GPUs: faster, probabilities within about 1e-4 of fp32), --fast compile the optimized rewrite "
         "under torch.compile; all compile and tune for a minute or more at their first start.")
persons_option = click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True,
                              help="Persons per window, M (1 single person, 5 multi person).")


@click.group("stgcn-rt", cls=OneLineErrorGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stgcn-rt")
@click.option("--debug", is_flag=True, help="Show full tracebacks and exporter logs.")
def cli(debug: bool) -> None:
    """Two-stream ST-GCN skeleton action recognition, from a PyTorch checkpoint to real time.

    \b
    Typical flow:
      stgcn-rt demo                                    # export + run, on shipped data
      stgcn-rt check                                   # what this machine can run
      stgcn-rt export model.pt -o model.onnx           # validated static-shape ONNX
      stgcn-rt build model.onnx -o model.engine        # TensorRT engine (fp16 by default)
      stgcn-rt run --source cam.mp4 --model model.onnx --events events.jsonl
      stgcn-rt bench                                   # every backend side by side
    """
    Context.debug = debug
    if debug:
        import logging

        os.environ.setdefault("STGCN_RT_DEBUG", "1")  # pose workers and MediaPipe keep their logs

        logger = logging.getLogger("stgcn_rt")
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler())


@cli.command("init-demo")
@click.option("-o", "--output", default="demo.pt", show_default=True, help="Checkpoint to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@handle_errors
def init_demo(output: str, seed: int) -> None:
    """Write an UNTRAINED two-stream demo checkpoint (mediapipe33, normal/shoplifting).

    Its predictions mean nothing; it exists so that every command runs without a user file.
    """
    from stgcn_rt.model.checkpoint import make_demo_checkpoint

    path = make_demo_checkpoint(output, seed=seed)
    click.echo(f"wrote {path} (untrained demo checkpoint, seed {seed})")


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="ONNX file to write (atomically).")
@persons_option
@click.option("--seq-len", type=click.IntRange(min=3), default=FRAMES, show_default=True,
              help="Frames per window, T.")
@layout_option
@center_option
@motion_option
@classes_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Static batch size N.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch axis dynamic (TensorRT then needs a profile).")
@click.option("--input-name", default="input", show_default=True)
@click.option("--output-name", default="output", show_default=True, help="Name of the logits output.")
@click.option("--probs", "probs_output", default=None, metavar="NAME",
              help="Also output softmax probabilities under NAME.")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16: the ST-GCN blocks in fp16 inside the graph (for strongly typed builders such as "
                   "TensorRT-RTX); input normalisation, pooling and classifier stay fp32.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Real windows (.npy, (N, C, T, V, M)) to validate on besides random ones.")
@click.option("--random", "random_count", type=click.IntRange(min=1), default=8, show_default=True,
              help="Number of random windows to validate on.")
@click.option("--no-validate", is_flag=True, help="Skip the PyTorch vs ONNX Runtime check.")
@handle_errors
def export(checkpoint: str, output: str, persons: int, seq_len: int, layout: str | None,
           center: int | None, motion: str | None, classes: list[str] | None, batch: int,
           dynamic_batch: bool, input_name: str, output_name: str, probs_output: str | None,
           opset: int, precision: str, data: str | None, random_count: int, no_validate: bool) -> None:
    """Export CHECKPOINT to a validated, static-shape ONNX model."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx, input_shape
    from stgcn_rt.files import check_output_path
    from stgcn_rt.model.checkpoint import load_checkpoint

    check_output_path(output, (".onnx",))
    options = ExportOptions(persons=persons, seq_len=seq_len, batch=batch, dynamic_batch=dynamic_batch,
                            input_name=input_name, output_name=output_name, probs_output=probs_output,
                            opset=opset, precision=precision)
    options.check()
    total = 2 if no_validate else 3
    step(1, total, f"loading {checkpoint}")
    loaded = load_checkpoint(checkpoint, layout=layout, center=center, motion=motion,
                             classes=classes)
    config = loaded.config
    click.echo(f"      {'two-stream' if config.two_stream else 'single-stream'} ST-GCN, "
               f"{config.layout}, motion {config.motion}, classes {', '.join(config.classes)}", err=True)
    shape = ("N" if dynamic_batch else batch,) + input_shape(loaded, options)[1:]
    step(2, total, f"exporting {precision} ONNX opset {opset}, input {options.input_name} {shape}")
    if not no_validate:
        step(3, total, "validating against PyTorch with ONNX Runtime")
    path, comparisons = export_onnx(loaded, output, options, validate=not no_validate, data=data,
                                    random_count=random_count)
    for comparison in comparisons:
        click.echo(f"      {comparison.line()}", err=True)
    size = path.stat().st_size / 1e6
    click.echo(f"wrote {path} ({size:.1f} MB)")


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Real windows (.npy, (N, C, T, V, M)) to compare on besides random ones.")
@click.option("--random", "random_count", type=click.IntRange(min=1), default=8, show_default=True,
              help="Number of random windows.")
@layout_option
@center_option
@motion_option
@handle_errors
def validate(checkpoint: str, model: str, data: str | None, random_count: int, layout: str | None,
             center: int | None, motion: str | None) -> None:
    """Compare MODEL (ONNX, or a TensorRT engine) with CHECKPOINT run by PyTorch: logits, probabilities, top-1.

    Layout, centre and motion default to what MODEL's metadata records. Exits 1 when the fp32
    difference exceeds 1e-4.
    """
    import json

    from stgcn_rt.model.checkpoint import load_checkpoint
    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier
    from stgcn_rt.runtime.classifier import is_checkpoint, load_classifier
    from stgcn_rt.runtime.validation import validate as run_validation

    if is_checkpoint(model):
        raise StgcnError(f"{model} is a checkpoint: validate takes the CHECKPOINT first, then the MODEL exported "
                         "from it (.onnx, .engine)")
    with load_classifier(model) as candidate:
        stored = json.loads(getattr(candidate, "metadata", {}).get("stgcn_rt.config", "{}"))
        loaded = load_checkpoint(
            checkpoint, layout=layout or stored.get("layout"),
            center=center if center is not None else stored.get("center"),
            motion=motion or stored.get("motion"),
        )
        expected_sha = getattr(candidate, "metadata", {}).get("checkpoint_sha256")
        if expected_sha and expected_sha != loaded.sha256:
            click.echo(f"warning: {model} was exported from another checkpoint (sha256 {expected_sha[:12]}…)", err=True)
        precision = getattr(candidate, "metadata", {}).get("precision", "fp32")
        if precision != "fp32" and data is None:
            click.echo(f"warning: {model} is {precision}; without --data (real windows) only random windows, "
                       "which have no decision margins, are compared", err=True)
        with TorchClassifier(loaded) as reference:
            results = run_validation(reference, candidate, data, random_count=random_count, precision=precision)
    for result in results:
        click.echo(result.line())
    if not all(r.passed for r in results):
        raise StgcnError(f"{model} does not match {checkpoint} ({results[-1].criteria.describe()})")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True,
              help="M used for a checkpoint's FLOP count.")
@click.option("--seq-len", type=click.IntRange(min=3), default=FRAMES, show_default=True,
              help="T used for a checkpoint's FLOP count.")
@handle_errors
def info(file: str, persons: int, seq_len: int) -> None:
    """Describe a checkpoint (.pt/.pth), an ONNX model or a TensorRT engine (from its JSON sidecar):
    layout, classes, shapes, parameters, FLOPs, and what an engine was built for."""
    from stgcn_rt.info import describe

    echo_rows(describe(file, persons=persons, seq_len=seq_len))


def echo_rows(rows: list[tuple[str, str]]) -> None:
    """Print (label, value) rows with the values aligned."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


@cli.command()
@handle_errors
def check() -> None:
    """What this machine can run: PyTorch (CPU, CUDA), ONNX Runtime, TensorRT, the GPU kernels and
    the pipeline's MediaPipe and OpenCV, with the version found or why not. Run it first on a new
    machine (on a Jetson: in the venv made with --system-site-packages, to see JetPack's TensorRT)."""
    from stgcn_rt.runtime.environment import capabilities

    echo_rows([(c.name, ("yes  " if c.ok else "no   ") + c.detail) for c in capabilities()])


def command_line() -> str:
    """The command as given, quoted for a shell, passwords in URLs masked."""
    import shlex

    from stgcn_rt.urls import mask_url

    return " ".join(shlex.quote(mask_url(arg)) for arg in ["stgcn-rt", *Context.argv])


def run_pipeline(config: Any, model: str, device: str, fast: str | None = None) -> None:
    """Run the pipeline from the CLI: summary on stdout, exit 130 after Ctrl-C."""
    from stgcn_rt.pipeline.runner import events_line, run_with_model, summary_table

    config.command = command_line()
    result = run_with_model(config, model, device, fast=fast, report=lambda text: click.echo(text, err=True))
    click.echo(summary_table(result.summaries))
    click.echo(events_line(config.events, result))
    for folder, what in ((config.save_video, "annotated video"), (config.save_clips, "alert clips")):
        if folder is not None and folder.is_dir():
            click.echo(f"{what}: {folder}/")
    if result.interrupted:
        sys.exit(130)


pose_option = click.option(
    "--pose", "pose_backend", type=click.Choice(["blazepose", "mediapipe"]), default=None,
    help="Pose backend. blazepose: MediaPipe's networks and graph run by PyTorch on --device, cameras batched "
         "together (with several persons a camera its detector also looks in the frame's two halves); mediapipe: "
         "MediaPipe's own CPU solution (in worker processes "
         "for run). Default: blazepose with --device cuda, mediapipe otherwise.")

pipeline_options = [
    click.option("--persons", type=click.IntRange(min=1), default=None,
                 help="Persons per window, M: 1 follows the main person; more (5, the contract's) detects, tracks "
                      "and slots them. Default: the model's M (an ONNX model or engine is exported for one M; a "
                      "checkpoint takes any, default 1)."),
    click.option("--detector", default="hog", show_default=True,
                 help="Multi-person detector: hog (offline, built into OpenCV) or yolo:WEIGHTS.pt (ultralytics)."),
    click.option("--stride", type=click.IntRange(min=1), default=5, show_default=True,
                 help="Classify a window every STRIDE frames."),
    click.option("--min-frames", type=click.IntRange(min=1), default=None,
                 help="Frames a camera must have seen before its first window (default: a whole window, 150, so "
                      "no prediction comes from padding); lower it for the roadmap's zero-padded early windows."),
    click.option("--device", default="cpu", show_default=True,
                 help="cpu or cuda[:N] for the classifier, and for the blazepose pose backend."),
    pose_option,
    click.option("--pose-precision", type=click.Choice(["fp32", "fp16"]), default=None,
                 help="blazepose's arithmetic (default: fp16 on a GPU, fp32 on the CPU)."),
    click.option("--pose-models", default=None, metavar="DIR",
                 help="blazepose's networks from a folder of exported files instead of PyTorch: "
                      "pose_detection and pose_landmark_full as .onnx (stgcn-rt export-pose; ONNX Runtime) or, on "
                      "a GPU, .engine (stgcn-rt build; TensorRT, taken first). They run in their own precision."),
    click.option("--pose-lanes", type=click.IntRange(min=1), default=1, show_default=True,
                 help="blazepose's lanes: threads that each pose a share of the cameras, on a CUDA stream of their "
                      "own, so that one's host work can overlap another's networks (on an H100 host two were "
                      "slower than one: their host work shares one interpreter lock)."),
    click.option("--pose-graphs/--no-pose-graphs", default=None,
                 help="blazepose on a GPU: run each stage (crops, network, heatmap refinement) as one CUDA graph "
                      "launch instead of hundreds of small ones from Python (default: on; --no-pose-graphs runs "
                      "them eagerly)."),
    click.option("--pose-process/--no-pose-process", default=None,
                 help="blazepose in a process of its own, fed by the decoding processes and reading the decoded "
                      "frames in place, so that neither its host work nor the frames on their way to it share the "
                      "pipeline's interpreter lock (default: on a GPU; on the CPU it runs in the pipeline's process)."),
    click.option("--threshold", type=click.FloatRange(0, 1), default=0.8, show_default=True,
                 help="Alert when p(alert class) stays at or above this..."),
    click.option("--min-windows", type=click.IntRange(min=1), default=3, show_default=True,
                 help="...for this many consecutive windows (and clear after as many below)."),
    click.option("--alert-class", default=None, help="Class that raises alerts (default: the last class)."),
    click.option("--pose-workers", type=click.IntRange(min=1), default=None,
                 help="mediapipe's worker processes (default: one per CPU core; --debug shows their logs)."),
    click.option("--decode-workers", type=click.IntRange(min=1), default=None,
                 help="Processes decoding the cameras' video (default: half the CPU cores, at most one per camera)."),
]


def with_options(options: list[Callable[..., Any]]) -> Callable[..., Any]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


@cli.command()
@click.option("--source", "sources", multiple=True, required=True,
              help="Video file, folder of videos (one camera each), camera index or rtsp:// / http:// URL; "
                   "repeat for more cameras.")
@click.option("--model", required=True, help="Classifier: .pt/.pth (PyTorch), .onnx, .engine/.plan.")
@click.option("--events", default="events.jsonl", show_default=True, help="JSON Lines file events are appended to.")
@click.option("--save-video", default=None, metavar="DIR", help="Write an annotated MP4 per camera into DIR.")
@click.option("--save-clips", default=None, metavar="DIR", help="Write an annotated MP4 of the window for each alert.")
@click.option("--display", is_flag=True, help="Show each camera in a window (needs a screen); q or Esc stops.")
@click.option("--realtime", is_flag=True, help="Pace video files to their frame rate, like live cameras.")
@fast_option
@with_options(pipeline_options)
@handle_errors
def run(sources: tuple[str, ...], model: str, events: str, save_video: str | None, save_clips: str | None,
        display: bool, realtime: bool, fast: str | None, persons: int | None, detector: str, stride: int,
        min_frames: int | None, device: str, pose_backend: str | None, pose_precision: str | None,
        pose_models: str | None, pose_lanes: int, pose_graphs: bool | None, pose_process: bool | None,
        threshold: float, min_windows: int,
        alert_class: str | None, pose_workers: int | None, decode_workers: int | None) -> None:
    """Run the pipeline: cameras -> pose (MediaPipe or BlazePose) -> ST-GCN -> events (and annotated video).

    \b
    --events gets, appended: a "run" line (run id, model and its sha256, classes, settings, command),
    then one "prediction" line per classified window, "alert" lines, "camera" lines (failed,
    connecting, reconnecting, reconnected) and "error" lines (pose, classification), each with the
    run id. A camera that fails is reported once and the others continue; Ctrl-C stops cleanly.
    """
    from pathlib import Path

    from stgcn_rt.pipeline.runner import PipelineConfig

    config = PipelineConfig(
        sources=list(sources), events=Path(events), persons=persons, stride=stride, min_frames=min_frames,
        save_video=Path(save_video) if save_video else None, save_clips=Path(save_clips) if save_clips else None,
        display=display, threshold=threshold, min_windows=min_windows, alert_class=alert_class,
        pose=pose_backend, pose_device=device, pose_precision=pose_precision, pose_models=pose_models,
        pose_lanes=pose_lanes, pose_graphs=pose_graphs, pose_process=pose_process, pose_workers=pose_workers,
        decode_workers=decode_workers, pace=realtime, detector=detector)
    run_pipeline(config, model, device, fast)


@cli.command()
@click.option("--out", default="stgcn-rt-demo", show_default=True, help="Folder for the demo's files.")
@click.option("--video", default=None, help="Video to run on (default: the clip shipped with the package).")
@handle_errors
def demo(out: str, video: str | None) -> None:
    """End-to-end demo on shipped data, on the CPU: demo checkpoint -> validated ONNX -> pipeline.

    The checkpoint is UNTRAINED, so its labels mean nothing; the demo shows every stage working.
    """
    from pathlib import Path

    from stgcn_rt.data import demo_video
    from stgcn_rt.demo import prepare_demo
    from stgcn_rt.pipeline import require_pipeline_packages
    from stgcn_rt.pipeline.runner import PipelineConfig

    require_pipeline_packages()
    folder = Path(out)
    onnx_path = prepare_demo(folder, step, report=lambda text: click.echo(text, err=True))
    source = video or str(demo_video())
    events = folder / "events.jsonl"
    events.unlink(missing_ok=True)  # a fresh demo log each run
    step(3, 3, f"running the pipeline on {Path(source).name} with ONNX Runtime on the CPU")
    config = PipelineConfig(sources=[source], events=events, save_video=folder / "video")
    run_pipeline(config, str(onnx_path), "cpu")


calibration_options = [
    click.option("--calib", type=click.Path(dir_okay=False), default=None,
                 help="Calibration windows (.npy, (N, 3, T, V, M)), real ones from your cameras."),
    click.option("--calib-video", type=click.Path(file_okay=False), default=None,
                 help="Or a folder of videos: windows are extracted by the pose step."),
    click.option("--calib-method", type=click.Choice(["percentile", "entropy", "minmax"]), default="percentile",
                 show_default=True, help="How activation ranges are chosen."),
]


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="Q/DQ INT8 ONNX to write.")
@with_options(calibration_options)
@click.option("--keep-fp32", default="data_bn,fcn", show_default=True,
              help="Comma-separated name parts of layers left unquantized ('' for none).")
@click.option("--target", type=click.Choice(["tensorrt", "onnxruntime"]), default="tensorrt", show_default=True,
              help="tensorrt: symmetric int8 with float biases, which TensorRT fuses (stgcn-rt build). onnxruntime: "
                   "uint8 activations, int32 biases and each graph step's BatchNorm folded, so ONNX Runtime's CPU "
                   "kernels run every block in 8 bits (about 2x faster there than the tensorrt form; TensorRT "
                   "cannot build it).")
@click.option("--keep-batchnorm", is_flag=True,
              help="onnxruntime target: leave each graph step's BatchNorm in float, as before the fold "
                   "(slower; its max probability difference to fp32 was 9.8e-4 against 1.1e-3 on the trained "
                   "check in docs/benchmarks/precision-cpu-2026-11-26.md).")
@handle_errors
def quantize(model: str, output: str, calib: str | None, calib_video: str | None, calib_method: str,
             keep_fp32: str, target: str, keep_batchnorm: bool) -> None:
    """Make an INT8 (Q/DQ) ONNX from an fp32 MODEL, calibrated on real windows.

    Both targets run on ONNX Runtime (check with stgcn-rt validate CHECKPOINT OUT --data ...); the
    default builds into a TensorRT INT8 engine with explicit quantization.
    """
    from stgcn_rt.export.quantize import quantize_int8
    from stgcn_rt.files import check_output_path
    from stgcn_rt.pipeline.calibration import calibration_windows

    check_output_path(output, (".onnx",))
    windows = calibration_windows(calib, calib_video, model, report=echo_err)
    step(1, 1, f"quantizing {model} for {target} on {len(windows)} calibration windows ({calib_method})")
    path = quantize_int8(model, output, windows, calib_method, tuple(k for k in keep_fp32.split(",") if k), target,
                         fold_batchnorms=False if keep_batchnorm else None)
    click.echo(f"wrote {path}")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="Engine to write (a .json sidecar is written beside it).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp16", show_default=True)
@with_options(calibration_options)
@click.option("--workspace", default="1GiB", show_default=True, help="Builder workspace limit, e.g. 512MiB, 2GiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), default=None,
              help="Timing cache file: read if present, updated after the build (faster rebuilds).")
@click.option("--dla-core", type=click.IntRange(min=0), default=None, help="Build for this DLA core (Jetson).")
@click.option("--gpu-fallback", is_flag=True, help="With --dla-core: run layers DLA cannot on the GPU.")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest batch of the optimisation profile, for a dynamic-batch ONNX.")
@click.option("--builder", type=click.Choice(["auto", "tensorrt", "rtx"]), default="auto", show_default=True,
              help="tensorrt, rtx (TensorRT-RTX, pip install tensorrt-rtx) or auto (tensorrt if installed).")
@click.option("--int8-mode", type=click.Choice(["explicit", "implicit"]), default="explicit", show_default=True,
              help="explicit: Q/DQ ONNX (TensorRT's preferred path); implicit: TensorRT's entropy calibrator, "
                   "where the installed TensorRT still has it.")
@click.option("--calib-cache", type=click.Path(dir_okay=False), default=None,
              help="Implicit INT8: calibration cache read if present, written after calibration.")
@click.option("--compute-capability", default=None, metavar="SMxx",
              help="TensorRT-RTX only: build ahead of time for this GPU generation (e.g. sm86), even without a GPU.")
@handle_errors
def build(model: str, output: str, precision: str, calib: str | None, calib_video: str | None,
          calib_method: str, workspace: str, timing_cache: str | None, dla_core: int | None, gpu_fallback: bool,
          max_batch: int, builder: str, int8_mode: str, calib_cache: str | None, compute_capability: str | None
          ) -> None:
    """Build a TensorRT engine from an stgcn-rt ONNX MODEL (fp32, fp16 or int8).

    \b
    fp16 keeps input normalisation, pooling and the classifier in fp32.
    int8 uses explicit quantization: MODEL must be a Q/DQ ONNX (stgcn-rt quantize), or give
    --calib/--calib-video and the Q/DQ ONNX is made first, beside the engine.
    """
    from pathlib import Path

    from stgcn_rt.export.quantize import is_quantized, quantize_int8
    from stgcn_rt.export.tensorrt_build import BuildOptions, build_engine, parse_size
    from stgcn_rt.files import check_output_path
    from stgcn_rt.pipeline.calibration import calibration_windows

    check_output_path(output, (".engine", ".plan"))
    if not Path(model).exists():
        raise StgcnError(f"ONNX model {model} not found")
    options = BuildOptions(precision=precision, workspace=parse_size(workspace),
                           timing_cache=Path(timing_cache) if timing_cache else None, dla_core=dla_core,
                           gpu_fallback=gpu_fallback, builder=builder, compute_capability=compute_capability,
                           max_batch=max_batch, int8_mode=int8_mode,
                           calibration_cache=Path(calib_cache) if calib_cache else None)
    implicit = precision == "int8" and int8_mode == "implicit"
    if implicit and (calib or calib_video):
        options.calibration = calibration_windows(calib, calib_video, model, report=echo_err)
    total = 2 if precision == "int8" and not implicit and not is_quantized(model) else 1
    if total == 2:
        windows = calibration_windows(calib, calib_video, model, report=echo_err)
        qdq = Path(output).with_suffix(".int8.onnx")
        step(1, 2, f"quantizing {model} on {len(windows)} calibration windows -> {qdq}")
        model = str(quantize_int8(model, qdq, windows, calib_method))
    step(total, total, f"building a {precision} engine from {model}")
    path, sidecar = build_engine(model, output, options, report=lambda text: click.echo(text, err=True))
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, built in {sidecar['build_seconds']} s) "
               f"and {path}.json")


#: the libraries whose log lines a bench keeps off the console (--debug shows them)
BENCH_LOGGERS = ("torch", "onnxscript", "triton", "matplotlib")


def int_list(_ctx: click.Context, _param: click.Parameter, text: str) -> list[int]:
    """Option callback: "1,8,32" -> [1, 8, 32], positive whole numbers only."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 1:
        raise click.BadParameter("give positive whole numbers, e.g. 1,8,32")
    return values


def int_list_or_none(ctx: click.Context, param: click.Parameter, text: str) -> list[int]:
    """As :func:`int_list`; "none" is the empty list."""
    return [] if text == "none" else int_list(ctx, param, text)


@cli.command()
@click.option("--model", default="demo", show_default=True,
              help="demo (the untrained demo network), a .pt checkpoint, or a Triton server address "
                   "(grpc://HOST:8001/NAME or http://...) timed with --clients beside the in-process scheduler "
                   "running --compare.")
@click.option("--compare", default="demo", show_default=True,
              help="With a server --model: the local checkpoint for the in-process side (the one the server serves).")
@click.option("--clients", default="1,4,16", show_default=True, callback=int_list,
              help="With a server --model: concurrent batch-1 clients to try.")
@click.option("--engine", type=click.Path(dir_okay=False), default=None, help="Also time this TensorRT engine.")
@click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--backends", default=None, metavar="A,B",
              help=f"Subset of: {', '.join(NAMES)} (default: all this machine can run; 'none': only the "
                   "sections asked for with --cameras, --pose-batch, --pipeline-cameras). 'optimized' is "
                   "the channels-last, sparse-graph rewrite (two CUDA streams unless 'serial'); 'autotune' compiles "
                   "with max-autotune (minutes); 'kernels' runs this project's GPU kernels ('pointer-loads': "
                   "without Hopper's tensor memory accelerator; 'fp8': the temporal convolutions on fp8 operands); "
                   "'onnxruntime-as-exported' runs the export's graph steps as written (the runner otherwise "
                   "mixes joints first on the CPU); 'onnxruntime-one-session' runs a batch in one run with every "
                   "core splitting each operator (the runner otherwise runs a window per core at a time); "
                   "'triton' is a Triton Inference Server given by --model URL.")
@click.option("--batch", "batches", default="1,8,32,128,512", show_default=True, callback=int_list,
              help="Batch sizes for throughput.")
@click.option("--cameras", default="1,4,16,64,256,1024", show_default=True, callback=int_list_or_none,
              help="Camera counts to simulate, or 'none' to skip the camera test.")
@click.option("--stride", type=click.IntRange(min=1), default=5, show_default=True,
              help="A window every STRIDE frames per camera (25 fps).")
@click.option("--iterations", type=click.IntRange(min=5), default=200, show_default=True,
              help="Timed batch-1 runs per backend (after warm-up).")
@click.option("--seconds", type=click.FloatRange(min=0.2), default=3.0, show_default=True,
              help="Seconds per throughput point and per camera count.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU cores for ONNX Runtime (default: all): threads for one window, or windows at a time.")
@click.option("--p99-ms", type=click.FloatRange(min=1), default=100.0, show_default=True,
              help="Camera capacity: p99 latency limit.")
@click.option("--scheduler-backend", type=click.Choice([*SCHEDULER_BACKENDS, *ALIASES]),
              default=DEFAULT_SCHEDULER_BACKEND, show_default=True,
              help="On a GPU, what the batching scheduler runs in the camera test (default: what --fast runs).")
@click.option("--pose-batch", "pose_batches", default="none", show_default=True, callback=int_list_or_none,
              help="The pose section: BlazePose's networks at these batch sizes and its whole graph across as "
                   "many cameras, beside MediaPipe's solution on one CPU process (e.g. 64,256,1024 on a GPU; "
                   "there each eagerly and through CUDA graphs).")
@click.option("--pipeline-cameras", default="none", show_default=True, callback=int_list_or_none,
              help="The end-to-end section: this many paced 25 fps cameras through the whole pipeline (decode, "
                   "pose, ST-GCN, events) per pose backend, e.g. 16,64,128,256 (each count runs the clip's 12 s).")
@click.option("--pipeline-pose", default="blazepose,mediapipe", show_default=True,
              help="Pose backends the end-to-end section compares.")
@click.option("--pipeline-p99-ms", type=click.FloatRange(min=1), default=250.0, show_default=True,
              help="End-to-end capacity: frame-to-event p99 limit (and every window classified).")
@click.option("--pipeline-lanes", default="1", show_default=True, callback=int_list,
              help="blazepose's lanes (run --pose-lanes) to compare in the end-to-end section, e.g. 1,2.")
@click.option("--out", default="bench", show_default=True, help="Folder for the JSON, Markdown and PNG report.")
@click.option("--name", default=None, help="File name stem (default: bench-<device>; a new run overwrites the last).")
@handle_errors
def bench(model: str, compare: str, clients: list[int], engine: str | None, persons: int, backends: str | None,
          batches: list[int], cameras: list[int], stride: int, iterations: int, seconds: float, threads: int | None,
          p99_ms: float, scheduler_backend: str, pose_batches: list[int], pipeline_cameras: list[int],
          pipeline_pose: str, pipeline_p99_ms: float, pipeline_lanes: list[int], out: str, name: str | None) -> None:
    """Time every backend side by side in one process, and the multi-camera designs.

    Batch-1 latency (with and without host<->device copies), throughput per batch size, and how
    many 25 fps cameras the roadmap's thread-per-camera design and the batching scheduler each
    serve with p99 < 100 ms and no dropped window. Ratios are against the roadmap's eager fp32
    baseline, measured in the same run. Writes JSON, Markdown and PNG plots into --out.

    \b
    Asked for, also: pose (--pose-batch: BlazePose beside MediaPipe) and the whole pipeline
    (--pipeline-cameras: cameras kept in real time per pose backend). For those alone:
      stgcn-rt bench --backends none --cameras none --pose-batch 64,256 --pipeline-cameras 16,64
    """
    import contextlib
    import re
    from pathlib import Path

    from tqdm import tqdm

    from stgcn_rt.bench.report import write
    from stgcn_rt.bench.run import BenchConfig, run_bench
    from stgcn_rt.pipeline.pose_stage import POSE_BACKENDS
    from stgcn_rt.quiet import library_messages_hidden
    from stgcn_rt.runtime.classifier import is_checkpoint

    chosen = ([] if backends == "none" else [configuration(b.strip()).name for b in backends.split(",")]
              ) if backends else None
    poses = [p.strip() for p in pipeline_pose.split(",")]
    for pose in poses:
        if pose not in POSE_BACKENDS:
            raise StgcnError(f"--pipeline-pose: unknown pose backend {pose}: choose from {', '.join(POSE_BACKENDS)}")
    server = model if "://" in model else None
    local = compare if server else model
    if local != "demo" and not Path(local).exists():
        raise StgcnError(f"checkpoint {local} not found")
    if local != "demo" and not is_checkpoint(local):
        raise StgcnError(f"bench times a checkpoint (.pt/.pth) and makes its ONNX forms itself, not {local}: "
                         "give the checkpoint the model was exported from (and --engine for a TensorRT engine)")
    config = BenchConfig(model=local, server=server, clients=clients,
                         engine=Path(engine) if engine else None, persons=persons, backends=chosen,
                         batches=batches, cameras=cameras,
                         stride=stride, iterations=iterations,
                         seconds=seconds, threads=threads, p99_limit_ms=p99_ms,
                         scheduler_backend=configuration(scheduler_backend).name, pose_batches=pose_batches,
                         pipeline_cameras=pipeline_cameras, pipeline_poses=poses, pipeline_p99_ms=pipeline_p99_ms,
                         pipeline_lanes=pipeline_lanes, command=command_line())
    with tqdm(desc="bench", unit="step", leave=False) as bar, \
            contextlib.nullcontext() if Context.debug else library_messages_hidden(BENCH_LOGGERS):
        def tick(text: str) -> None:
            bar.set_postfix_str(text)
            bar.update(1)

        report = run_bench(config, tick)
    device = re.sub(r"[^a-z0-9]+", "-", report["environment"]["device"].lower()).strip("-")[:40]
    stem = name or f"bench-{device}"  # one current report per machine: a new run overwrites it
    paths = write(report, Path(out), stem)
    click.echo((Path(out) / f"{stem}.md").read_text())
    click.echo("wrote " + ", ".join(str(p) for p in paths))


@cli.command("export-pose")
@click.option("-o", "--output", required=True, metavar="DIR",
              help="Folder for pose_detection.onnx and pose_landmark_full.onnx (made if missing).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="A static batch size (default: a dynamic batch axis, for TensorRT optimisation profiles).")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True, help="ONNX opset.")
@handle_errors
def export_pose(output: str, batch: int | None, opset: int) -> None:
    """Write BlazePose's two networks (from the installed mediapipe wheel) as ONNX, validated.

    \b
    Each file is checked against its PyTorch form with ONNX Runtime on frames of the shipped clip
    and written only if every output agrees (relative 1e-3). Build TensorRT engines from them with
    trtexec or `stgcn-rt build` on the target (e.g. a Jetson); docs/jetson.md says how.
    """
    from stgcn_rt.pose.export import export_pose as export

    for done in export(output, batch, opset, report=lambda text: click.echo(text, err=True)):
        click.echo(done.line())


@cli.command()
@click.argument("video", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="The .npz to write (atomically).")
@pose_option
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N], for blazepose.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default=None,
              help="blazepose's arithmetic (default: fp16 on a GPU, fp32 on the CPU).")
@click.option("--models", default=None, metavar="DIR",
              help="blazepose's networks from exported files (stgcn-rt export-pose: .onnx; stgcn-rt build: .engine, "
                   "taken first on a GPU), in their own precision, instead of PyTorch's.")
@click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True,
              help="Persons per frame, M.")
@handle_errors
def pose(video: str, output: str, pose_backend: str | None, device: str, precision: str | None, models: str | None,
         persons: int) -> None:
    """Write the pose keypoints of VIDEO: an array `keypoints` of shape (frames, M, 33, 3) (x, y in
    [0, 1] of the frame, visibility), what the classifier's windows are made of, with `fps`.

    Frames are resized to the contract's 640x480 first, as the pipeline does; frames without a
    person are zeros. Useful for training data, and to compare the pose backends.
    """
    from pathlib import Path

    from tqdm import tqdm

    from stgcn_rt.files import check_output_path
    from stgcn_rt.pipeline import require_pipeline_packages
    from stgcn_rt.pipeline.keypoints import save_keypoints, video_keypoints, video_properties
    from stgcn_rt.pipeline.pose_stage import check_pose_options, default_pose, default_precision

    check_output_path(output, (".npz",), why="the keypoints are written as a numpy archive")
    if not Path(video).is_file():
        raise StgcnError(f"video {video} not found")
    require_pipeline_packages()
    backend = pose_backend or default_pose(device)
    check_pose_options(backend, precision, models, "--precision", "--models")
    precision = precision or default_precision(device)
    total, fps = video_properties(video)
    with tqdm(total=total or None, desc=f"pose ({backend})", unit="frame", leave=False) as bar:
        keypoints = video_keypoints(video, persons, backend, device, precision, progress=lambda _: bar.update(1),
                                    models=models)
    save_keypoints(output, keypoints, fps, backend)
    found = float(keypoints.reshape(len(keypoints), -1).any(axis=1).mean())
    networks = "" if backend != "blazepose" else f", networks from {models}" if models else f", {precision}"
    click.echo(f"wrote {output}: keypoints {tuple(keypoints.shape)}, a person in {found:.0%} of the frames "
               f"({backend}{networks})")


@cli.command("export-triton")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="model_repository", show_default=True, help="Model repository folder.")
@click.option("--name", default="stgcn", show_default=True, help="Model name in the repository.")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--instances", type=click.IntRange(min=1), default=2, show_default=True,
              help="Model instances (instance_group count).")
@click.option("--preferred-batch", default="8,32", show_default=True, callback=int_list,
              help="Dynamic batching's preferred sizes.")
@click.option("--cpu", is_flag=True, help="Instances on the CPU (KIND_CPU) instead of the GPU.")
@persons_option
@handle_errors
def export_triton_command(source: str, output: str, name: str, max_batch: int, instances: int,
                          preferred_batch: list[int], cpu: bool, persons: int) -> None:
    """Write a Triton Inference Server model repository from a checkpoint, ONNX model or engine.

    A checkpoint is exported to a validated dynamic-batch ONNX for Triton's onnxruntime backend; an
    engine (with its .json sidecar) goes to the tensorrt backend. Prints the server command lines.
    """
    from stgcn_rt.serve.repository import TritonOptions, export_triton, server_commands

    options = TritonOptions(name=name, max_batch=max_batch, instances=instances,
                            preferred_batch=preferred_batch, kind="KIND_CPU" if cpu else "KIND_GPU",
                            persons=persons)
    target = export_triton(source, output, options, report=echo_err)
    click.echo(f"wrote {target}/ (config.pbtxt, labels.txt, 1/)")
    click.echo("serve it with:")
    for command in server_commands(target.parent):
        click.echo(f"  {command}")


@cli.command()
@click.argument("model")
@click.option("--name", default="stgcn", show_default=True, help="Model name clients address (grpc://HOST:PORT/NAME).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the server to other machines.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest batch Triton's dynamic batcher forms.")
@click.option("--queue-delay-us", type=click.IntRange(min=0), default=2000, show_default=True,
              help="How long the batcher waits to fill a batch.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] for the classifier.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@fast_option
@click.option("--triton-log", default=None, metavar="FILE",
              help="Where Triton's own log goes (default: stgcn-rt-serve-PID.log in the temporary folder).")
@persons_option
@handle_errors
def serve(model: str, name: str, host: str, http_port: int, grpc_port: int, max_batch: int, queue_delay_us: int,
          device: str, precision: str, fast: str | None, triton_log: str | None, persons: int) -> None:
    """Serve a checkpoint, ONNX model or engine through a local Triton Inference Server.

    Needs NVIDIA PyTriton (pip install nvidia-pytriton), which ships the tritonserver binary.
    Triton's dynamic batching feeds the classifier; camera hosts connect with
    `stgcn-rt run --model grpc://HOST:8001/stgcn`. Listens on 127.0.0.1 only unless --host says
    otherwise. Ctrl-C or SIGTERM stops it.
    """
    from pathlib import Path

    from stgcn_rt.runtime.classifier import fast_torch_options
    from stgcn_rt.serve.server import ServeOptions
    from stgcn_rt.serve.server import serve as serve_model

    if not Path(model).exists():
        raise StgcnError(f"model {model} not found")
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo_err(f"warning: listening on {host}: other machines can reach this server")
    classifier = {"device": device, "precision": precision, **(fast_torch_options(model, device, fast) if fast else {})}
    serve_model(model, ServeOptions(name=name, host=host, http_port=http_port, grpc_port=grpc_port,
                                    max_batch=max_batch, queue_delay_us=queue_delay_us, persons=persons,
                                    log_file=Path(triton_log) if triton_log else None, classifier=classifier),
                report=echo_err)


def main() -> None:
    cli(prog_name="stgcn-rt")


if __name__ == "__main__":
    main()
