"""The window contract: what every model takes and every stage builds, in one place.

A window is ``(C, T, V, M)`` float32: C=3 channels (x / width, y / height, visibility of MediaPipe's
landmarks, each in [0, 1]), T=150 frames (640x480 at 25 fps), V=33 landmarks, M=1 person or M=5;
a batch adds N in front. A model's output is logits ``(N, classes)``; probabilities are their
softmax. Absent persons and frames before a camera's first are all-zero.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Tuple

import numpy as np

from stgcn_rt.errors import StgcnError

CHANNELS = 3  # x, y, visibility
FRAMES = 150  # T: 6 s at 25 fps
JOINTS = 33  # V: MediaPipe's pose landmarks
PERSONS = (1, 5)  # M: the contract's single-person and multi-person forms

#: a batch shape (N, C, T, V, M); None where a model takes any size (typing's forms: a runtime alias
#: on Python 3.8)
Shape = Tuple[Optional[int], ...]


def stack_frames(frames: Iterable[np.ndarray], seq_len: int = FRAMES) -> np.ndarray:
    """Per-frame (C, V, M) arrays -> one (C, seq_len, V, M) window.

    As in the roadmap: the last ``seq_len`` frames are kept; a shorter buffer is followed by
    all-zero frames up to ``seq_len``.
    """
    frames = list(frames)
    if not frames:
        raise StgcnError("the frame buffer is empty: push at least one (C, V, M) frame")
    shape = frames[0].shape
    if len(shape) != 3 or any(f.shape != shape for f in frames):
        raise StgcnError(f"frames must all be (C, V, M) arrays of one shape, got {shape} and others")
    frames = frames[-seq_len:]
    window = np.zeros((shape[0], seq_len, shape[1], shape[2]), dtype=np.float32)
    window[:, : len(frames)] = np.stack(frames, axis=1)
    return window


def fit_persons(windows: np.ndarray, persons: int | None) -> np.ndarray:
    """Pad the person axis with absent (all-zero) persons, as the pipeline does, up to ``persons``."""
    have = windows.shape[4]
    if persons is None or have == persons:
        return windows
    if have > persons:
        raise StgcnError(f"windows hold {have} persons but the model takes {persons}")
    pad = np.zeros((*windows.shape[:4], persons - have), dtype=windows.dtype)
    return np.concatenate([windows, pad], axis=4)


def check_windows(windows: Any, expected: Shape, who: str) -> None:
    """Raise one clear error unless ``windows`` (numpy or torch) is a non-empty floating-point batch
    of ``expected``'s shape (None: any size); ``who`` names the model in the message."""
    shape = tuple(windows.shape) if hasattr(windows, "shape") else None
    if shape is None:
        raise StgcnError(f"windows must be a numpy array or torch tensor, got {type(windows).__name__}")
    if len(shape) == 4:
        raise StgcnError(f"windows have shape {shape}: add the batch axis, (N, C, T, V, M) = (1, *{shape})")
    mismatch = len(shape) != 5 or any(e is not None and s != e for s, e in zip(shape[1:], expected[1:]))
    if mismatch:
        want = "(" + ", ".join("N" if i == 0 else ("*" if e is None else str(e)) for i, e in enumerate(expected)) + ")"
        raise StgcnError(f"windows have shape {shape} but {who} expects {want} (N, C, T, V, M)")
    if shape[0] == 0:
        raise StgcnError("windows are empty: N must be at least 1")
    dtype = str(windows.dtype)
    if not any(kind in dtype for kind in ("float16", "float32", "float64", "bfloat16")):
        raise StgcnError(f"windows have dtype {dtype}; give floating-point keypoints (float32)")


def static_chunks(windows: Any, batch: int) -> list[tuple[Any, int]]:
    """``windows`` in chunks of a static-batch model's ``batch``, the last one padded with zeros:
    (chunk, how many of its windows are real). numpy or torch."""
    chunks = []
    for start in range(0, windows.shape[0], batch):
        chunk = windows[start:start + batch]
        count = chunk.shape[0]
        chunks.append((_pad_batch(chunk, batch) if count < batch else chunk, count))
    return chunks


def _pad_batch(chunk: Any, size: int) -> Any:
    if isinstance(chunk, np.ndarray):
        pad = np.zeros((size - chunk.shape[0], *chunk.shape[1:]), dtype=chunk.dtype)
        return np.concatenate([chunk, pad])
    import torch

    filler = torch.zeros((size - chunk.shape[0], *chunk.shape[1:]), dtype=chunk.dtype, device=chunk.device)
    return torch.cat([chunk, filler])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities of logits (N, classes), row by row."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def random_windows(shape: Shape, count: int, seed: int = 0) -> np.ndarray:
    """Keypoint-like windows of ``shape`` (None: 1): uniform in [0, 1) like normalised (x, y, visibility)."""
    _, c, t, v, m = (d or 1 for d in shape)
    return np.random.default_rng(seed).random((count, c, t, v, m), dtype=np.float32)


def load_windows(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an .npy of windows shaped (N, C, T, V, M) as float32."""
    path = Path(path)
    if not path.exists():
        raise StgcnError(f"windows file {path} not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise StgcnError(f"{path} is not a readable .npy array: {str(exc)[:200]}") from exc
    if data.ndim != 5:
        raise StgcnError(f"{path} has shape {data.shape}; windows must be (N, C, T, V, M)")
    if not np.issubdtype(data.dtype, np.floating):
        raise StgcnError(f"{path} has dtype {data.dtype}; windows must be floating point")
    return data.astype(np.float32, copy=False)
