"""Libraries' own console messages (progress prints, warnings, log lines) kept off the user's console."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def library_messages_hidden(loggers: tuple[str, ...]) -> Iterator[io.StringIO]:
    """Within the block: Python warnings ignored, the named loggers at ERROR, and stdout captured into
    the yielded buffer (for a --debug log). stgcn-rt's own messages go to stderr and stay."""
    captured = io.StringIO()
    chosen = [logging.getLogger(name) for name in loggers]
    levels = [lg.level for lg in chosen]
    for lg in chosen:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for lg, level in zip(chosen, levels):
            lg.setLevel(level)


def native_logs_shown() -> bool:
    """Whether C++ libraries' log lines reach the console: with STGCN_RT_DEBUG set (``--debug`` sets it)."""
    return bool(os.environ.get("STGCN_RT_DEBUG"))


def native_stderr_to_devnull() -> None:
    """Point file descriptor 2 at os.devnull: C++ libraries (MediaPipe's glog and absl) write there
    directly, past ``sys.stderr``."""
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """Within the block, file descriptor 2 goes to os.devnull, unless :func:`native_logs_shown`."""
    if native_logs_shown():
        yield
        return
    saved = os.dup(2)
    native_stderr_to_devnull()
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
