"""Export a loaded ST-GCN to a static-shape ONNX model that ONNX Runtime and TensorRT accept."""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from stgcn_rt import __version__
from stgcn_rt.artefact import ModelMetadata
from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.export.validate import Comparison, validate_onnx
from stgcn_rt.files import atomic_output, check_output_path
from stgcn_rt.model.checkpoint import LoadedModel
from stgcn_rt.model.network import set_block_precision
from stgcn_rt.onnx.tidy import fold_constants_and_identities
from stgcn_rt.quiet import library_messages_hidden
from stgcn_rt.window import FRAMES

#: the loggers whose progress lines and warnings an export keeps for --debug
EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "torch.export")
DEFAULT_OPSET = 17  # the newest opset TensorRT 8.5/8.6 (JetPack 5) parse fully


@dataclass
class ExportOptions:
    persons: int = 1
    seq_len: int = FRAMES
    batch: int = 1
    dynamic_batch: bool = False
    input_name: str = "input"
    output_name: str = "output"
    probs_output: str | None = None  # name of an extra softmax output, if wanted
    opset: int = DEFAULT_OPSET
    precision: str = "fp32"  # "fp16": the ST-GCN blocks in fp16, input/output and the rest fp32

    def check(self) -> None:
        if self.persons < 1:
            raise StgcnError(f"--persons must be 1 or more (1 single person, 5 multi person), got {self.persons}")
        if self.seq_len < 3:
            raise StgcnError(f"--seq-len must be at least 3 frames, got {self.seq_len}")
        if self.batch < 1:
            raise StgcnError(f"--batch must be 1 or more, got {self.batch}")
        if self.precision not in ("fp32", "fp16"):
            raise StgcnError(f"ONNX precision must be fp32 or fp16 (int8 comes from stgcn-rt quantize), "
                             f"got {self.precision}")
        if self.opset < 17:
            raise StgcnError(f"--opset must be 17 or newer, got {self.opset}")
        names = [self.input_name, self.output_name] + ([self.probs_output] if self.probs_output else [])
        if len(set(names)) != len(names) or not all(names):
            raise StgcnError(f"tensor names must be distinct and non-empty, got {', '.join(names)}")


class _WithProbabilities(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.softmax(logits, dim=1)


def input_shape(loaded: LoadedModel, options: ExportOptions) -> tuple[int, int, int, int, int]:
    config = loaded.config
    return (options.batch, config.in_channels, options.seq_len, config.num_joints, options.persons)


def onnx_metadata(loaded: LoadedModel, options: ExportOptions) -> dict[str, str]:
    """The export's metadata_props: :class:`~stgcn_rt.artefact.ModelMetadata`, which every runner reads,
    and what else it came from (checkpoint, motion, network config, tensor names)."""
    config = loaded.config
    facts = ModelMetadata(classes=list(config.classes), persons=options.persons, seq_len=options.seq_len,
                          layout=config.layout, precision=options.precision, untrained=loaded.untrained)
    return {
        "stgcn_rt.version": __version__,
        **facts.to_onnx(),
        "motion": config.motion if config.two_stream else "none",
        "two_stream": str(config.two_stream).lower(),
        "checkpoint_sha256": loaded.sha256,
        "input_name": options.input_name,
        "output_name": options.output_name,
        "stgcn_rt.config": json.dumps(config.to_dict(), sort_keys=True),
    }


def export_graph(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str,
                 output_names: list[str], opset: int, dynamic_batch: bool) -> None:
    """``module`` on ``example`` as ONNX at ``path`` (the batch axis dynamic or not): torch.export-based
    exporter where available (clean, folded graphs); TorchScript otherwise."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
        use_dynamo = "dynamo" in torch.onnx.export.__code__.co_varnames
    except ImportError:
        use_dynamo = False
    kwargs: dict = dict(input_names=[input_name], output_names=output_names, opset_version=opset)
    if use_dynamo:
        if dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
        torch.onnx.export(module, (example,), str(path), dynamo=True, verbose=False, **kwargs)
    else:
        if dynamic_batch:
            kwargs["dynamic_axes"] = {name: {0: "batch"} for name in [input_name, *output_names]}
        torch.onnx.export(module, (example,), str(path), do_constant_folding=True, **kwargs)


def export_onnx(loaded: LoadedModel, output: str | os.PathLike[str], options: ExportOptions,
                validate: bool = True, data: str | os.PathLike[str] | None = None, random_count: int = 8
                ) -> tuple[Path, list[Comparison]]:
    """Export ``loaded`` to ``output`` and, by default, validate it before it is renamed into place:
    on ``random_count`` random windows and, when given, on the real windows in ``data``.

    The result passes ``onnx.checker``, has opset ``options.opset`` and carries the model's
    layout, persons, sequence length, classes, motion and checkpoint hash as metadata_props. A
    model that fails validation (fp32 logits or probabilities off by more than 1e-4 from PyTorch)
    is not written: the call raises and ``output`` is left as it was.
    """
    import onnx

    options.check()
    if validate and random_count < 1:
        raise StgcnError(f"validation needs at least one random window, not {random_count}")
    out = check_output_path(output)
    module: torch.nn.Module = loaded.model.eval()
    if options.precision == "fp16":
        if not _cpu_runs_fp16_convolutions():
            raise StgcnError(f"an fp16 ONNX needs torch >= 2.1 (the export runs the fp16 blocks on the CPU) and "
                             f"this is torch {torch.__version__}: export fp32, from which stgcn-rt build "
                             "--precision fp16 builds an fp16 TensorRT engine")
        module = set_block_precision(copy.deepcopy(module), torch.float16)
    output_names = [options.output_name]
    if options.probs_output:
        module = _WithProbabilities(module).eval()
        output_names.append(options.probs_output)
    shape = input_shape(loaded, options)
    if options.dynamic_batch:  # a batch of 1 would let the tracer specialise on it (0/1 specialisation)
        shape = (max(2, shape[0]), *shape[1:])
    example = torch.rand(*shape)

    with atomic_output(out) as tmp, tempfile.TemporaryDirectory(prefix="stgcn-rt-export-") as work:
        # The exporter may write weights as external data beside its file; export into a scratch
        # folder and save one self-contained file.
        raw = Path(work) / "model.onnx"
        with library_messages_hidden(EXPORTER_LOGGERS) as captured, torch.no_grad():
            try:
                export_graph(module, example, raw, options.input_name, output_names, options.opset,
                             options.dynamic_batch)
            except Exception as exc:  # the exporters raise many types; report one line
                raise StgcnError(f"ONNX export failed: {first_line(exc)[:300]} (rerun with --debug for details)"
                                 ) from exc
        logging.getLogger(__name__).debug(captured.getvalue())
        model = onnx.load(str(raw))
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if opset != options.opset:
            raise StgcnError(
                f"the exporter produced opset {opset}, not the requested {options.opset}: "
                f"pass --opset {opset} or use a torch/onnxscript pair that converts to {options.opset}"
            )
        fold_constants_and_identities(model)
        name_nodes_after_parameters(model)
        del model.metadata_props[:]
        for key, value in onnx_metadata(loaded, options).items():
            model.metadata_props.add(key=key, value=value)
        model.producer_name = "stgcn-rt"
        model.producer_version = __version__
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
        comparisons = validate_onnx(loaded, tmp, data, options.precision, random_count) if validate else []
        failed = [c for c in comparisons if not c.passed]
        if failed:
            raise StgcnError(f"validation failed, {out} not written: {failed[0].line()}")
    return out, comparisons


def _cpu_runs_fp16_convolutions() -> bool:
    """torch 2.0 (JetPack 5's) has no fp16 convolution on the CPU, which tracing an fp16 export runs."""
    try:
        torch.nn.functional.conv2d(torch.zeros(1, 1, 1, 1, dtype=torch.float16),
                                   torch.zeros(1, 1, 1, 1, dtype=torch.float16))
    except RuntimeError:
        return False
    return True


def name_nodes_after_parameters(model) -> None:  # noqa: ANN001 - onnx.ModelProto
    """Name each node that reads a weight after that weight's module ("origin_stream.data_bn/BatchNormalization").

    The exporter's own names ("node_conv2d_45") say nothing; these make TensorRT layer names,
    quantization exclusions and profiles readable, and let builders find data_bn and fcn.
    """
    parameters = {init.name for init in model.graph.initializer}
    used: set[str] = set()
    for node in model.graph.node:
        # prefer the weight: identical constants (zero means, unit variances) may be shared
        candidates = sorted((name for name in node.input if name in parameters and "." in name),
                            key=lambda name: not name.endswith(".weight"))
        owner = candidates[0].rsplit(".", 1)[0] if candidates else None
        if owner is None:
            continue
        name, n = f"{owner}/{node.op_type}", 1
        while name in used:
            n += 1
            name = f"{owner}/{node.op_type}_{n}"
        used.add(name)
        node.name = name
