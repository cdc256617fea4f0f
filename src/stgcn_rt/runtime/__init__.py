"""Runners: one Classifier interface over PyTorch, ONNX Runtime and TensorRT, and batching."""

from typing import Any

__all__ = ["Classifier", "load_classifier"]


def __getattr__(name: str) -> Any:
    """Import the classifier module on first use, so the CLI can read :mod:`.modes` without numpy."""
    if name in __all__:
        from stgcn_rt.runtime import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
