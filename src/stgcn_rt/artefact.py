"""What an exported model says of itself: one schema, three carriers.

An ONNX file carries it in its ``metadata_props`` (strings), a TensorRT engine in its JSON sidecar
(``model.engine.json``, typed values beside the build's facts), a Triton model repository in its
config's ``parameters`` (strings, ``stgcn_rt.``-prefixed). Each runner reads its carrier into
:class:`ModelMetadata`, so classes, precision and the untrained flag mean the same everywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stgcn_rt.errors import StgcnError

#: the Triton config parameters' prefix (their keys: stgcn_rt.classes, stgcn_rt.untrained, ...)
TRITON_PREFIX = "stgcn_rt."


@dataclass
class ModelMetadata:
    """The facts a runner needs about a model file, whatever carries them."""

    classes: list[str] = field(default_factory=list)  # in output order; empty where not recorded
    persons: int | None = None  # M the model takes (None: not recorded)
    seq_len: int | None = None  # T
    layout: str | None = None  # skeleton layout, e.g. mediapipe33
    precision: str = "fp32"  # fp32, fp16 or int8
    untrained: bool = False  # no training behind it (the demo's): its labels mean nothing

    def class_names(self, count: int) -> list[str]:
        """The recorded class names where they fit a model of ``count`` outputs, else class_0, class_1, ..."""
        return list(self.classes) if len(self.classes) == count else [f"class_{i}" for i in range(count)]

    # -- ONNX metadata_props ------------------------------------------------------------------
    def to_onnx(self) -> dict[str, str]:
        props = {"classes": ",".join(self.classes), "precision": self.precision,
                 "untrained": str(self.untrained).lower()}
        for key in ("persons", "seq_len", "layout"):
            if getattr(self, key) is not None:
                props[key] = str(getattr(self, key))
        return props

    @classmethod
    def from_onnx(cls, props: dict[str, str]) -> ModelMetadata:
        return cls(classes=_names(props.get("classes", "")), persons=_int(props.get("persons")),
                   seq_len=_int(props.get("seq_len")), layout=props.get("layout"),
                   precision=props.get("precision", "fp32"), untrained=props.get("untrained") == "true")

    # -- the engine's sidecar ------------------------------------------------------------------
    def to_sidecar(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "persons": self.persons, "seq_len": self.seq_len,
                "layout": self.layout, "precision": self.precision, "untrained": self.untrained}

    @classmethod
    def from_sidecar(cls, sidecar: dict[str, Any]) -> ModelMetadata:
        return cls(classes=list(sidecar.get("classes") or []), persons=sidecar.get("persons"),
                   seq_len=sidecar.get("seq_len"), layout=sidecar.get("layout"),
                   precision=sidecar.get("precision", "unknown"), untrained=bool(sidecar.get("untrained")))

    # -- Triton config parameters ----------------------------------------------------------------
    def to_triton(self) -> dict[str, str]:
        return {TRITON_PREFIX + key: value for key, value in self.to_onnx().items()}

    @classmethod
    def from_triton(cls, parameters: dict[str, str]) -> ModelMetadata:
        """From a served config's parameters; a server that records no precision says ``unknown``."""
        props = {key[len(TRITON_PREFIX):]: value for key, value in parameters.items() if key.startswith(TRITON_PREFIX)}
        return cls.from_onnx({"precision": "unknown", **props})


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def sidecar_path(engine: str | os.PathLike[str]) -> Path:
    """Where an engine's sidecar lies: ``model.engine.json`` beside ``model.engine``."""
    return Path(f"{engine}.json")


def read_sidecar(engine: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An engine's sidecar, or None where it has none; an unreadable one is one clear error."""
    path = sidecar_path(engine)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StgcnError(f"the engine sidecar {path} is unreadable ({exc}): rebuild with stgcn-rt build") from exc
