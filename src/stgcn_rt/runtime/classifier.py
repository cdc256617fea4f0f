"""The Classifier interface and ``load_classifier``, which picks a backend from the file suffix.

Every backend is a context manager: it allocates (sessions, device buffers, CUDA graphs) when
made and frees them in ``close()``/on exit. ``predict`` takes numpy or torch windows shaped
``(N, C, T, V, M)`` and returns probabilities ``(N, classes)``; ``logits`` returns the raw sum of
the two streams' logits.
"""

from __future__ import annotations

import importlib
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stgcn_rt.artefact import ModelMetadata
from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime.configurations import DEFAULT_FAST_MODE, fast_options
from stgcn_rt.window import Shape, check_windows, softmax, static_chunks

#: suffix -> "module:Class" of its runner; imported only when used.
BACKENDS: dict[str, str] = {
    ".pt": "stgcn_rt.runtime.backends.torch_runner:TorchClassifier",
    ".pth": "stgcn_rt.runtime.backends.torch_runner:TorchClassifier",
    ".onnx": "stgcn_rt.runtime.backends.onnxruntime_runner:OnnxClassifier",
    ".engine": "stgcn_rt.runtime.backends.tensorrt_runner:TensorRTClassifier",
    ".plan": "stgcn_rt.runtime.backends.tensorrt_runner:TensorRTClassifier",
}

#: URL scheme -> runner, for models served elsewhere
SCHEMES: dict[str, str] = {
    "http": "stgcn_rt.runtime.backends.triton_runner:TritonClassifier",
    "grpc": "stgcn_rt.runtime.backends.triton_runner:TritonClassifier",
}

class NonFiniteOutput(StgcnError):
    """A model gave NaN or infinite logits; the message says why and what to run instead."""


class Classifier(ABC):
    """One loaded model. Subclasses set the attributes below and implement ``_logits``."""

    classes: list[str]
    #: (batch, C, T, V, M); None where the model accepts any size
    input_shape: Shape
    device: str
    name: str = "classifier"
    #: the arithmetic the model runs in (fp32, fp16, int8; "unknown" where a server does not say)
    precision: str = "fp32"
    #: a model with no training behind it (the demo's), as its file says: its labels mean nothing
    untrained: bool = False
    #: set by :meth:`close`; every call after it fails in one line
    closed: bool = False

    @property
    def model_metadata(self) -> ModelMetadata:
        """What this model says of itself, as its file or server records it (the layout aside)."""
        return ModelMetadata(classes=list(self.classes), persons=self.input_shape[4], seq_len=self.input_shape[2],
                             precision=self.precision, untrained=self.untrained)

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free sessions and device memory; the classifier is unusable afterwards."""
        self._release()
        self.closed = True

    def _release(self) -> None:  # noqa: B027 - backends without resources need no cleanup
        """Free this backend's sessions, buffers and device memory (for :meth:`close`)."""

    def require_open(self) -> None:
        """Raise one clear error if :meth:`close` has run."""
        if self.closed:
            raise StgcnError(f"this {self.name} classifier was closed: load the model again to classify")

    def warm_up(self, max_batch: int,  # noqa: B027 - most backends have nothing to prepare
                progress: Callable[[int], None] | None = None) -> None:
        """Prepare every batch size up to ``max_batch`` (compile, capture) before live traffic;
        ``progress`` is called with each batch size once it is ready."""

    def unpadded_batch(self, count: int) -> int:
        """How many of ``count`` waiting windows to run as one batch so that none of it is padding.

        A backend that pads every batch up to a fixed size (a static-batch model, CUDA graphs per
        batch bucket) would spend up to half a batch on zeros; a scheduler runs the rest as the
        next batch instead.
        """
        fixed = self.batch_size
        if fixed is None or count < fixed:
            return count
        return count - count % fixed

    @property
    def batch_size(self) -> int | None:
        """The fixed batch size of a static-batch model, or None when any batch is accepted."""
        return self.input_shape[0]

    def check_windows(self, windows: Any) -> Any:
        """Return ``windows`` as a float32 array/tensor, or raise one clear error.

        A (type, shape, dtype) once accepted is not checked again: at batch 1 on a GPU a call takes
        a quarter of a millisecond, and the full check would be a few per cent of it."""
        signature = (type(windows), getattr(windows, "shape", None), getattr(windows, "dtype", None))
        accepted: set[tuple[Any, ...]] = self.__dict__.setdefault("_accepted_windows", set())
        if signature in accepted:
            return windows
        check_windows(windows, self.input_shape, self.name)
        if len(accepted) < 1024:  # batch sizes times shapes: bounded for a scheduler, but not trusted to be
            accepted.add(signature)
        return windows

    def logits(self, windows: Any) -> np.ndarray:
        self.require_open()
        windows = self.check_windows(windows)
        return self.finite(self._batch_logits(windows), windows)

    def finite(self, outputs: np.ndarray, windows: Any) -> np.ndarray:
        """``outputs`` (logits or probabilities of ``windows``) when all are finite; else one clear
        error, so that no NaN reaches a caller or an event. Checked on the outputs, a few numbers per
        window; the windows are looked at only to say why."""
        if np.isfinite(outputs).all():
            return outputs
        bad = int((~np.isfinite(outputs.reshape(len(outputs), -1))).any(axis=1).sum())
        what = f"{self.name} ({self.precision}) gave NaN or infinite outputs for {bad} of {len(outputs)} windows"
        if not _all_finite(windows):
            raise NonFiniteOutput(f"{what}: the windows themselves hold NaN or infinity; give finite keypoints "
                                  "(x, y, visibility in [0, 1])")
        if self.precision in ("fp32", "unknown"):
            raise NonFiniteOutput(f"{what}: the model's weights or statistics hold NaN, infinity or values "
                                  "that overflow fp32; check the checkpoint")
        raise NonFiniteOutput(f"{what}: this model's activations overflow {self.precision}; run it in fp32 "
                              "instead (precision='fp32', an fp32 ONNX or an fp32 engine)")

    def _batch_logits(self, windows: Any) -> np.ndarray:
        """Logits of checked ``windows``: one :meth:`_logits` call, or one per static-batch chunk."""
        fixed = self.batch_size
        if fixed is None or windows.shape[0] == fixed:
            return self._logits(windows)
        return np.concatenate([self._logits(chunk)[:count] for chunk, count in static_chunks(windows, fixed)])

    def predict(self, windows: Any) -> np.ndarray:
        """Class probabilities, (N, classes), float32."""
        return softmax(self.logits(windows).astype(np.float64)).astype(np.float32)

    def launch(self, windows: Any) -> Callable[[], np.ndarray]:
        """Start classifying ``windows``; the returned function waits for and returns what
        :meth:`predict` would. A backend that runs asynchronously (the PyTorch runner with CUDA
        graphs) returns before the device is done, so its caller can prepare the next batch
        meanwhile; this one has finished when it returns."""
        probabilities = self.predict(windows)
        return lambda: probabilities

    @property
    def launches_asynchronously(self) -> bool:
        """Whether :meth:`launch` returns before the work is done for numpy windows (so a caller gains
        by preparing its next batch before waiting)."""
        return False

    @abstractmethod
    def _logits(self, windows: Any) -> np.ndarray:
        """Run one batch that matches ``input_shape``; return float32 logits (N, classes)."""


def warm_up_with_progress(classifier: Classifier, max_batch: int, report: Callable[[str], None]) -> None:
    """:meth:`Classifier.warm_up`, reporting each batch size made ready and the time so far: a
    first start of the GPU kernels compiles and tunes them for about a minute on a 16-core H100
    host, longer with fewer cores (later starts read Triton's cache)."""
    started = time.monotonic()
    classifier.warm_up(max_batch, lambda batch: report(f"  batch size {batch} ready after "
                                                       f"{time.monotonic() - started:.0f} s"))


def _all_finite(windows: Any) -> bool:
    if isinstance(windows, np.ndarray):
        return bool(np.isfinite(windows).all())
    return bool(windows.isfinite().all())


def is_url(path: str | os.PathLike[str]) -> bool:
    return "://" in str(path)


def backend_for(path: str | os.PathLike[str]) -> Callable[..., Classifier]:
    if is_url(path):
        scheme = str(path).split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise StgcnError(f"cannot serve models from {scheme}:// addresses: use {' or '.join(SCHEMES)}://")
        target = SCHEMES[scheme]
    else:
        suffix = Path(path).suffix.lower()
        if suffix not in BACKENDS:
            raise StgcnError(
                f"cannot tell the backend of {path}: use a file ending in {', '.join(BACKENDS)} or a "
                "Triton address (http://host:8000/MODEL)"
            )
        target = BACKENDS[suffix]
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in (".pt", ".pth")


def fast_torch_options(model: str | os.PathLike[str], device: str, mode: str = DEFAULT_FAST_MODE) -> dict[str, Any]:
    """The PyTorch runner's options for ``--fast`` (``mode``: a key of
    :data:`~stgcn_rt.runtime.configurations.FAST_MODES`)."""
    if not (is_checkpoint(model) and device.startswith("cuda")):
        raise StgcnError("--fast needs a .pt checkpoint and --device cuda (it selects PyTorch fp16 on the GPU)")
    return fast_options(mode)


def load_classifier(path: str | os.PathLike[str], device: str = "cpu", precision: str = "fp32",
                    **options: Any) -> Classifier:
    """Open ``path`` with the backend its suffix names (.pt/.pth, .onnx, .engine/.plan), or a model
    served by Triton (http://host:8000/MODEL, grpc://host:8001/MODEL)."""
    if not is_url(path) and not Path(path).exists():
        raise StgcnError(f"model file {path} not found")
    return backend_for(path)(path, device=device, precision=precision, **options)
