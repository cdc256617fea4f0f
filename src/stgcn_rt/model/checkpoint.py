"""Load ST-GCN checkpoints in the public reference layout, and write stgcn-rt's own.

Accepted: a bare state dict, or a dict holding one under ``state_dict``/``model``/``net``
(nested too), with or without a DataParallel ``module.`` prefix; two-stream (``origin_stream.*``
and ``motion_stream.*``) or single-stream keys. The network shape (classes, joints, partitions,
edge importance) is read from the tensors, the load is strict, and a mismatch is reported as one
line listing the missing and unexpected keys.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from stgcn_rt.errors import StgcnError, first_line
from stgcn_rt.files import atomic_output, sha256_of
from stgcn_rt.model.graph import spatial_adjacency
from stgcn_rt.model.layouts import DEFAULT_LAYOUT, get_layout, layouts_with_joints
from stgcn_rt.model.network import MOTIONS, ModelConfig, build_model

STREAMS = ("origin_stream.", "motion_stream.")
CONTAINER_KEYS = ("state_dict", "model", "net", "model_state_dict")
METADATA_KEY = "stgcn_rt"
DEFAULT_CLASSES = ("normal", "shoplifting")
# torch's wording for a class or function that weights_only=True will not unpickle, across versions:
# "Unsupported global: GLOBAL pkg.Name", "pkg.Name was not an allowed global by default" and, in
# torch 2.0, "Unsupported class pkg.Name".
_REFUSED_GLOBAL = (re.compile(r"Unsupported global: GLOBAL ([\w.]+)"),
                   re.compile(r"([\w.]+) was not an allowed global"),
                   re.compile(r"Unsupported class ([\w.]+)"))


@dataclass
class LoadedModel:
    model: torch.nn.Module
    config: ModelConfig
    sha256: str
    path: Path
    adjacency_source: str  # "checkpoint" or "layout"
    metadata: dict

    @property
    def untrained(self) -> bool:
        """A model with no training behind it (the demo's): its labels are never to be read as alarms."""
        return bool(self.metadata.get("untrained"))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


EXPORTED_FORMATS = {".onnx": "an ONNX model", ".engine": "a TensorRT engine", ".plan": "a TensorRT engine"}


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint safely (``weights_only=True``) into (state dict, stgcn-rt metadata)."""
    path = Path(path)
    if not path.exists():
        raise StgcnError(f"checkpoint {path} not found")
    if path.is_dir():
        raise StgcnError(f"checkpoint {path} is a directory, not a file")
    try:
        with warnings.catch_warnings():  # torch 2.0's loader warns of its own TypedStorage use
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError,
            UnicodeDecodeError, AttributeError, IndexError, OSError) as exc:  # OSError: a cut zip's seek
        refused = refused_global(str(exc))
        if refused is not None:
            raise StgcnError(
                f"{path} holds pickled Python objects besides tensors ({refused}), which are not "
                "loaded for safety (weights_only=True): save a plain state dict with "
                "torch.save(model.state_dict())"
            ) from exc
        exported = EXPORTED_FORMATS.get(path.suffix.lower())
        if exported:
            raise StgcnError(f"{path} is {exported}, not a PyTorch checkpoint: give the .pt/.pth checkpoint "
                             "it was made from") from exc
        # torch's weights_only failures open with paragraphs of advice; the unpickler's own words follow
        unpickler = str(exc).partition("WeightsUnpickler error:")[2].strip()
        reason = unpickler.splitlines()[0] if unpickler else first_line(exc)
        raise StgcnError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupted or another "
            f"format): {reason[:200]}"
        ) from exc
    return unwrap_state_dict(raw, path)


def refused_global(message: str) -> str | None:
    """The class or function a ``weights_only`` load refused to unpickle, named in its message.

    Other ``weights_only`` failures (a text file, random bytes) are not pickled objects but files
    that are no checkpoint; torch 2.14 reports both as "Weights only load failed", so the message's
    wording about a global is what tells them apart.
    """
    for pattern in _REFUSED_GLOBAL:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def unwrap_state_dict(raw: object, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    metadata: dict = {}
    while isinstance(raw, Mapping):
        if isinstance(raw.get(METADATA_KEY), Mapping):
            metadata = dict(raw[METADATA_KEY])
        inner = next((raw[k] for k in CONTAINER_KEYS if isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            break
        raw = inner
    if not isinstance(raw, Mapping):
        raise StgcnError(f"{path} holds a {type(raw).__name__}, not a state dict")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise StgcnError(f"{path} holds no tensors: not a model checkpoint")
    return {strip_module_prefix(k): v for k, v in tensors.items()}, metadata


def strip_module_prefix(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def infer_config(state: Mapping[str, torch.Tensor], path: Path) -> ModelConfig:
    """Read the network's shape from its tensors."""
    two_stream = any(k.startswith(STREAMS[0]) for k in state) and any(
        k.startswith(STREAMS[1]) for k in state
    )
    prefix = STREAMS[0] if two_stream else ""

    def tensor(name: str) -> torch.Tensor:
        key = prefix + name
        if key not in state:
            raise StgcnError(
                f"{path} is not an ST-GCN checkpoint: key '{key}' is missing "
                f"(found e.g. {', '.join(list(state)[:3])})"
            )
        return state[key]

    fcn = tensor("fcn.weight")
    first_conv = tensor("st_gcn_networks.0.gcn.conv.weight")
    in_channels = first_conv.shape[1]
    partitions = first_conv.shape[0] // 64
    bn_size = tensor("data_bn.weight").shape[0]
    if prefix + "A" in state:
        num_joints = state[prefix + "A"].shape[-1]
        partitions = state[prefix + "A"].shape[0]
    else:
        num_joints = bn_size // in_channels
    return ModelConfig(
        num_classes=fcn.shape[0],
        in_channels=in_channels,
        num_joints=num_joints,
        partitions=partitions,
        edge_importance=any(k.startswith(prefix + "edge_importance.") for k in state),
        two_stream=two_stream,
    )


def resolve_layout(num_joints: int, requested: str | None, stored: str | None, path: Path) -> str:
    """The layout to use: the user's choice, else the stored one, else the only one that fits."""
    name = requested or stored
    if name is None:
        fitting = layouts_with_joints(num_joints)
        name = fitting[0].name if len(fitting) == 1 else DEFAULT_LAYOUT
    layout = get_layout(name)
    if layout.num_joints != num_joints:
        names = ", ".join(lay.name for lay in layouts_with_joints(num_joints)) or "none built in"
        raise StgcnError(
            f"{path} has {num_joints} joints but layout {layout.name} has {layout.num_joints}: "
            f"pass --layout with a {num_joints}-joint layout ({names})"
        )
    return layout.name


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    layout: str | None = None,
    center: int | None = None,
    motion: str | None = None,
    classes: list[str] | None = None,
) -> LoadedModel:
    """Load a checkpoint into an eval-mode network; see the module docstring for what is accepted."""
    path = Path(path)
    state, metadata = read_checkpoint(path)
    config = infer_config(state, path)
    stored = ModelConfig.from_dict(metadata.get("config", {})) if metadata.get("config") else None

    config.layout = resolve_layout(config.num_joints, layout, stored.layout if stored else None, path)
    config.center = center if center is not None else (stored.center if stored else None)
    config.motion = motion or (stored.motion if stored else "forward")
    if config.motion not in MOTIONS:
        raise StgcnError(f"unknown motion '{config.motion}': choose one of {', '.join(MOTIONS)}")
    config.classes = resolve_classes(classes, stored.classes if stored else None, config.num_classes, path)

    prefix = STREAMS[0] if config.two_stream else ""
    if prefix + "A" in state:
        adjacency, source = state[prefix + "A"], "checkpoint"
    else:
        adjacency = torch.tensor(spatial_adjacency(get_layout(config.layout), config.center))
        source = "layout"
        if adjacency.shape[0] != config.partitions:
            raise StgcnError(
                f"{path} has {config.partitions} graph partitions and no stored 'A'; the spatial "
                f"strategy gives {adjacency.shape[0]}: this checkpoint needs its own 'A' tensor"
            )
    model = build_model(config, adjacency)
    if source == "layout":  # A is a buffer derived from the graph, not a learned weight
        prefixes = STREAMS if config.two_stream else ("",)
        state = {**state, **{p + "A": adjacency for p in prefixes}}
    load_strict(model, state, path)
    model.eval()
    return LoadedModel(model, config, sha256_of(path), path, source, metadata)


def resolve_classes(
    requested: list[str] | None, stored: list[str] | None, num_classes: int, path: Path
) -> list[str]:
    if requested:
        if len(requested) != num_classes:
            raise StgcnError(
                f"--classes names {len(requested)} classes but {path} has {num_classes} outputs"
            )
        return list(requested)
    if stored and len(stored) == num_classes:
        return list(stored)
    if num_classes == len(DEFAULT_CLASSES):
        return list(DEFAULT_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
                parts.append(f"{label} keys: {shown}")
        raise StgcnError(f"{path} does not match the ST-GCN architecture: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def save_checkpoint(model: torch.nn.Module, config: ModelConfig, path: str | os.PathLike[str],
                    note: str = "", untrained: bool = False) -> Path:
    """Write a checkpoint in the reference layout, with stgcn-rt metadata beside the weights
    (``untrained``: a model with no training behind it, which every export and event says)."""
    metadata: dict = {"config": config.to_dict(), "note": note}
    if untrained:
        metadata["untrained"] = True
    payload = {"state_dict": model.state_dict(), METADATA_KEY: metadata}
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)  # via a handle: the archive name, and so the bytes, stay fixed
    return Path(path)


def make_demo_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """An UNTRAINED two-stream checkpoint (fixed seed) so every command runs without user files."""
    config = ModelConfig()
    torch.manual_seed(seed)
    model = build_model(config, torch.tensor(spatial_adjacency(get_layout(config.layout))))
    return save_checkpoint(
        model, config, path,
        note="UNTRAINED demo checkpoint made by `stgcn-rt init-demo`: its predictions mean nothing.",
        untrained=True,
    )
