"""Libraries' own console messages (progress prints, warnings, log lines) kept off the user's console."""

from __future__ import annotations

import contextlib
import io
import logging
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
