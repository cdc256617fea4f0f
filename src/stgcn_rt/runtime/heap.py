"""Keep Python's garbage collector off the hot path of a long-running process.

With torch (and MediaPipe, OpenCV) loaded a process holds a few hundred thousand objects that live
until it exits; each full collection walks all of them (about 50 ms on a 2-core CPU), and one falls
on whichever call happens to allocate at the time: a stall of a whole batch for every camera. Once
the models are loaded and warmed up, :func:`startup_objects_frozen` moves everything made so far
into the collector's permanent generation, so collections walk only what live traffic makes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Collect once, then exempt every surviving object from collections (``gc.freeze``) until the
    block ends. Enter it when loading is done, around the serving loop; on exit the objects return
    to the collector, so shutdown frees them as usual."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
