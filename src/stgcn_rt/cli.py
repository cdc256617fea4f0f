"""The ``stgcn-rt`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from stgcn_rt import __version__
from stgcn_rt.errors import StgcnError


class Context:
    debug = False


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """One line and a non-zero exit for every failure; the traceback only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise  # usage errors: click prints them with the usage line
        except StgcnError as exc:
            if Context.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # an unexpected failure is still one line without --debug
            if Context.debug:
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"error: unexpected {type(exc).__name__}: {first[:300]} "
                       "(rerun with --debug for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def parse_classes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [c.strip() for c in value.split(",")]
    if len(names) < 2 or not all(names):
        raise click.BadParameter("give at least two comma-separated class names, e.g. normal,shoplifting")
    return names


def step(index: int, total: int, text: str) -> None:
    click.echo(f"[{index}/{total}] {text}", err=True)


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
    "--classes", default=None, metavar="A,B,...",
    help="Class names in output order (default: stored in the checkpoint, else normal,shoplifting).")
persons_option = click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True,
                              help="Persons per window, M (1 single person, 5 multi person).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stgcn-rt")
@click.option("--debug", is_flag=True, help="Show full tracebacks and exporter logs.")
def cli(debug: bool) -> None:
    """Two-stream ST-GCN skeleton action recognition, from a PyTorch checkpoint to real time.

    \b
    Typical flow:
      stgcn-rt init-demo -o demo.pt            # an untrained demo checkpoint
      stgcn-rt export demo.pt -o model.onnx    # validated static-shape ONNX
      stgcn-rt info model.onnx
    """
    Context.debug = debug
    if debug:
        import logging

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
@click.option("--seq-len", type=click.IntRange(min=3), default=150, show_default=True,
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
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Real windows (.npy, (N, C, T, V, M)) to validate on besides random ones.")
@click.option("--no-validate", is_flag=True, help="Skip the PyTorch vs ONNX Runtime check.")
@handle_errors
def export(checkpoint: str, output: str, persons: int, seq_len: int, layout: str | None,
           center: int | None, motion: str | None, classes: str | None, batch: int,
           dynamic_batch: bool, input_name: str, output_name: str, probs_output: str | None,
           opset: int, data: str | None, no_validate: bool) -> None:
    """Export CHECKPOINT to a validated, static-shape ONNX model."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx, input_shape
    from stgcn_rt.files import check_output_path
    from stgcn_rt.model.checkpoint import load_checkpoint

    check_output_path(output)
    options = ExportOptions(persons=persons, seq_len=seq_len, batch=batch, dynamic_batch=dynamic_batch,
                            input_name=input_name, output_name=output_name, probs_output=probs_output,
                            opset=opset)
    options.check()
    total = 2 if no_validate else 3
    step(1, total, f"loading {checkpoint}")
    loaded = load_checkpoint(checkpoint, layout=layout, center=center, motion=motion,
                             classes=parse_classes(classes))
    config = loaded.config
    click.echo(f"      {'two-stream' if config.two_stream else 'single-stream'} ST-GCN, "
               f"{config.layout}, motion {config.motion}, classes {', '.join(config.classes)}", err=True)
    shape = ("N" if dynamic_batch else batch,) + input_shape(loaded, options)[1:]
    step(2, total, f"exporting ONNX opset {opset}, input {options.input_name} {shape}")
    if not no_validate:
        step(3, total, "validating against PyTorch with ONNX Runtime")
    path, comparisons = export_onnx(loaded, output, options, validate=not no_validate, data=data)
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
    """Compare MODEL (ONNX) with CHECKPOINT run by PyTorch: logits, probabilities, top-1.

    Layout, centre and motion default to what MODEL's metadata records. Exits 1 when the fp32
    difference exceeds 1e-4.
    """
    import json

    from stgcn_rt.export.validate import validate as run_validation
    from stgcn_rt.model.checkpoint import load_checkpoint
    from stgcn_rt.runtime.backends.torch_runner import TorchClassifier
    from stgcn_rt.runtime.classifier import load_classifier

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
        with TorchClassifier(loaded) as reference:
            results = run_validation(reference, candidate, data, random_count=random_count)
    for result in results:
        click.echo(result.line())
    if not all(r.passed for r in results):
        raise StgcnError(f"{model} does not match {checkpoint} within {results[0].tolerance:.0e}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--persons", type=click.IntRange(min=1), default=1, show_default=True,
              help="M used for a checkpoint's FLOP count.")
@click.option("--seq-len", type=click.IntRange(min=3), default=150, show_default=True,
              help="T used for a checkpoint's FLOP count.")
@handle_errors
def info(file: str, persons: int, seq_len: int) -> None:
    """Describe a checkpoint (.pt/.pth) or an ONNX model: layout, classes, shapes, parameters, FLOPs."""
    from stgcn_rt.info import describe

    rows = describe(file, persons=persons, seq_len=seq_len)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


def main() -> None:
    cli(prog_name="stgcn-rt")


if __name__ == "__main__":
    main()
