"""A Triton Inference Server model repository for an stgcn-rt model.

Layout (Triton's standard one)::

    model_repository/<name>/config.pbtxt
    model_repository/<name>/labels.txt
    model_repository/<name>/1/model.onnx   (onnxruntime backend)   or   1/model.plan (tensorrt backend)

The config asks for dynamic batching (preferred sizes, a short queue delay) and N instances; the
batch axis must be dynamic in the model, which Triton's batcher fills. Class names go to
labels.txt, and the model's metadata (:class:`~stgcn_rt.artefact.ModelMetadata`: classes, precision,
untrained, ...) to ``stgcn_rt.*`` parameters that stgcn-rt's Triton client reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stgcn_rt.artefact import ModelMetadata, read_sidecar, sidecar_path
from stgcn_rt.errors import StgcnError


@dataclass
class TritonOptions:
    name: str = "stgcn"
    max_batch: int = 64
    instances: int = 2
    preferred_batch: list[int] = field(default_factory=lambda: [8, 32])
    queue_delay_us: int = 2000
    kind: str = "KIND_GPU"  # or KIND_CPU (an onnxruntime model on a CPU-only server)
    persons: int = 1  # when exporting from a checkpoint
    random_count: int = 8  # random windows that export is validated on


@dataclass
class RepositoryModel:
    """What a repository's config.pbtxt says of the model it holds."""

    platform: str  # onnxruntime_onnx or tensorrt_plan
    filename: str
    input_name: str
    output_name: str
    window_dims: list[int]  # (C, T, V, M)
    metadata: ModelMetadata


def onnx_facts(path: Path) -> RepositoryModel:
    from stgcn_rt.export.onnx_file import read_onnx

    model = read_onnx(path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    graph_input, graph_output = model.graph.input[0], model.graph.output[0]
    dims = graph_input.type.tensor_type.shape.dim
    if dims[0].dim_value:
        raise StgcnError(f"{path} has a static batch of {dims[0].dim_value}; Triton's dynamic batching needs a "
                         "dynamic batch axis: re-export with stgcn-rt export --dynamic-batch")
    return RepositoryModel("onnxruntime_onnx", "model.onnx", graph_input.name, graph_output.name,
                           [d.dim_value for d in dims[1:]], ModelMetadata.from_onnx(meta))


def engine_facts(path: Path) -> RepositoryModel:
    facts = read_sidecar(path)
    if facts is None:
        raise StgcnError(f"{path} has no {sidecar_path(path).name} sidecar (built by stgcn-rt build): its tensor "
                         "names and shapes are unknown")
    shape = facts["inputs"][0]["shape"]
    if shape[0] != -1:
        raise StgcnError(f"{path} has a static batch of {shape[0]}; build it from a --dynamic-batch ONNX")
    return RepositoryModel("tensorrt_plan", "model.plan", facts["inputs"][0]["name"], facts["outputs"][0]["name"],
                           shape[1:], ModelMetadata.from_sidecar(facts))


def config_pbtxt(facts: RepositoryModel, options: TritonOptions) -> str:
    preferred = ", ".join(str(b) for b in sorted(b for b in options.preferred_batch if b <= options.max_batch))
    lines = [
        f'name: "{options.name}"',
        f'platform: "{facts.platform}"',
        f"max_batch_size: {options.max_batch}",
        "input [",
        "  {",
        f'    name: "{facts.input_name}"',
        "    data_type: TYPE_FP32",
        f"    dims: [ {', '.join(str(d) for d in facts.window_dims)} ]",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{facts.output_name}"',
        "    data_type: TYPE_FP32",
        f"    dims: [ {len(facts.metadata.classes)} ]",
        '    label_filename: "labels.txt"',
        "  }",
        "]",
        "dynamic_batching {",
        *([f"  preferred_batch_size: [ {preferred} ]"] if preferred else []),
        f"  max_queue_delay_microseconds: {options.queue_delay_us}",
        "}",
        "instance_group [",
        "  {",
        f"    count: {options.instances}",
        f"    kind: {options.kind}",
        "  }",
        "]",
        # the model's metadata, which stgcn-rt's Triton client reads (classes, untrained, ...)
        *(f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
          for key, value in facts.metadata.to_triton().items()),
    ]
    return "\n".join(lines) + "\n"


def export_triton(source: str | os.PathLike[str], repository: str | os.PathLike[str], options: TritonOptions,
                  report=print) -> Path:  # noqa: ANN001
    """Write ``repository/<name>/`` from a checkpoint, an ONNX model or an engine; return that folder."""
    source, repository = Path(source), Path(repository)
    if not source.exists():
        raise StgcnError(f"{source} not found")
    if options.max_batch < 1 or options.instances < 1:
        raise StgcnError("--max-batch and --instances must be 1 or more")
    if not repository.parent.is_dir() if str(repository.parent) else False:
        raise StgcnError(f"output directory {repository.parent} does not exist")
    target = repository / options.name
    with tempfile.TemporaryDirectory(prefix=".stgcn-rt-triton-", dir=repository.parent or ".") as work:
        staging = Path(work) / options.name
        (staging / "1").mkdir(parents=True)
        suffix = source.suffix.lower()
        if suffix in (".pt", ".pth"):
            from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
            from stgcn_rt.model.checkpoint import load_checkpoint

            report(f"      exporting {source.name} to ONNX with a dynamic batch (validated)")
            export_onnx(load_checkpoint(source), staging / "1" / "model.onnx",
                        ExportOptions(persons=options.persons, dynamic_batch=True), random_count=options.random_count)
            facts = onnx_facts(staging / "1" / "model.onnx")
        elif suffix == ".onnx":
            facts = onnx_facts(source)
            shutil.copyfile(source, staging / "1" / facts.filename)
        elif suffix in (".engine", ".plan"):
            facts = engine_facts(source)
            shutil.copyfile(source, staging / "1" / facts.filename)
        else:
            raise StgcnError(f"cannot put {source} in a Triton repository: give a .pt/.pth, .onnx or .engine/.plan")
        if not facts.metadata.classes:
            raise StgcnError(f"{source} records no class names: export it with stgcn-rt (--classes)")
        (staging / "config.pbtxt").write_text(config_pbtxt(facts, options))
        (staging / "labels.txt").write_text("\n".join(facts.metadata.classes) + "\n")
        repository.mkdir(exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


def server_commands(repository: Path, grpc_port: int = 8001, http_port: int = 8000) -> list[str]:
    path = repository.resolve()
    return [
        f"tritonserver --model-repository={path}",
        f"docker run --rm --gpus all -p 127.0.0.1:{http_port}:8000 -p 127.0.0.1:{grpc_port}:8001 "
        f"-v {path}:/models nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models",
    ]
