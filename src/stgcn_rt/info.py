"""``stgcn-rt info``: what a checkpoint or ONNX file holds, as ordered (label, value) rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stgcn_rt.errors import StgcnError
from stgcn_rt.window import FRAMES


def describe(path: str | os.PathLike[str], persons: int = 1, seq_len: int = FRAMES) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.exists():
        raise StgcnError(f"{path} not found")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return describe_onnx(path)
    if suffix in (".engine", ".plan"):
        return describe_engine(path)
    return describe_checkpoint(path, persons, seq_len)


def describe_engine(path: Path) -> list[tuple[str, str]]:
    """An engine as its JSON sidecar tells it: reading the engine itself would need TensorRT and its GPU."""
    from stgcn_rt.artefact import read_sidecar

    sidecar = read_sidecar(path)
    rows = [("file", str(path)), ("size", f"{path.stat().st_size / 1e6:.1f} MB")]
    if sidecar is None:
        return rows + [("kind", "TensorRT engine (no sidecar)"),
                       ("note", f"no {path.name}.json beside it: not built by stgcn-rt build, so nothing is known "
                                "of it and it loads unchecked")]

    def tensors(key: str) -> str:
        return "; ".join(f"{t['name']} ({', '.join(map(str, t['shape']))}) {t['dtype'].lower()}"
                         for t in sidecar.get(key, []))

    rows += [
        ("kind", f"TensorRT engine ({sidecar.get('tensorrt', 'tensorrt')} {sidecar.get('tensorrt_version', '?')})"),
        ("built for", f"{sidecar.get('gpu', '?')} (compute capability {sidecar.get('compute_capability', '?')})"),
        ("precision", str(sidecar.get("precision", "?"))
         + (f", DLA core {sidecar['dla_core']}" if sidecar.get("dla_core") is not None else "")),
        ("inputs", tensors("inputs")),
        ("outputs", tensors("outputs")),
        ("layout", str(sidecar.get("layout") or "?")),
        ("classes", ",".join(sidecar.get("classes") or []) or "?"),
        ("built from", f"{sidecar.get('onnx', '?')} (sha256 {sidecar.get('onnx_sha256', '?')})"),
        ("built", f"{sidecar.get('built_at', '?')} in {sidecar.get('build_seconds', '?')} s by stgcn-rt "
                  f"{sidecar.get('stgcn_rt_version', '?')}"),
    ]
    return rows + untrained_rows(bool(sidecar.get("untrained")))


def untrained_rows(untrained: bool) -> list[tuple[str, str]]:
    """A row saying a model is untrained (the demo's), where it is; none otherwise."""
    return [("trained", "NO: an untrained model, its labels mean nothing")] if untrained else []


def _gflops(flops: int | None) -> str:
    if flops is None:
        return "not counted: torch's FLOP counter needs torch 2.1"
    return f"{flops / 1e9:.2f} GFLOP per window"


def describe_checkpoint(path: Path, persons: int, seq_len: int) -> list[tuple[str, str]]:
    from stgcn_rt.model.checkpoint import load_checkpoint
    from stgcn_rt.model.summary import count_flops

    loaded = load_checkpoint(path)
    config = loaded.config
    shape = (1, config.in_channels, seq_len, config.num_joints, persons)
    rows = [
        ("file", str(path)),
        ("kind", "PyTorch checkpoint"),
        ("sha256", loaded.sha256),
        ("streams", "two-stream (origin + motion)" if config.two_stream else "single stream"),
        ("motion", config.motion if config.two_stream else "-"),
        ("layout", f"{config.layout} ({config.num_joints} joints)"),
        ("graph", f"{config.partitions} partitions, A from {loaded.adjacency_source}, "
                  f"edge importance {'on' if config.edge_importance else 'off'}"),
        ("classes", ", ".join(config.classes)),
        ("input", f"(N, {config.in_channels}, T, {config.num_joints}, M); any T and M"),
        ("parameters", f"{loaded.num_parameters:,}"),
        (f"FLOPs (T={seq_len}, M={persons})", _gflops(count_flops(loaded.model, shape))),
    ]
    note = loaded.metadata.get("note")
    if note:
        rows.append(("note", note))
    return rows + untrained_rows(loaded.untrained)


def describe_onnx(path: Path) -> list[tuple[str, str]]:
    import onnx
    from onnx import numpy_helper

    from stgcn_rt.export.onnx_file import read_onnx

    model = read_onnx(path)
    meta = {p.key: p.value for p in model.metadata_props}

    def shape_of(value: onnx.ValueInfoProto) -> str:
        dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
        return f"{value.name} ({', '.join(dims)})"

    parameters = sum(numpy_helper.to_array(t).size for t in model.graph.initializer)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
    rows = [
        ("file", str(path)),
        ("kind", f"ONNX (opset {opset}, producer {model.producer_name or '?'} {model.producer_version})"),
        ("inputs", "; ".join(shape_of(v) for v in model.graph.input)),
        ("outputs", "; ".join(shape_of(v) for v in model.graph.output)),
        ("parameters", f"{parameters:,}"),
    ]
    for key, label in (("layout", "layout"), ("persons", "persons"), ("seq_len", "seq_len"),
                       ("classes", "classes"), ("motion", "motion"), ("checkpoint_sha256", "checkpoint sha256"),
                       ("stgcn_rt.version", "stgcn-rt version")):
        if key in meta:
            rows.append((label, meta[key]))
    if "stgcn_rt.config" in meta:
        from stgcn_rt.model.network import ModelConfig
        from stgcn_rt.model.summary import flops_for_config

        config = ModelConfig.from_dict(json.loads(meta["stgcn_rt.config"]))
        shape = (1, config.in_channels, int(meta["seq_len"]), config.num_joints, int(meta["persons"]))
        rows.append(("FLOPs", _gflops(flops_for_config(config, shape))))
    else:
        rows.append(("note", "no stgcn-rt metadata: not exported by stgcn-rt"))
    return rows + untrained_rows(meta.get("untrained") == "true")
