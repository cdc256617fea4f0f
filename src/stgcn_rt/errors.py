"""The one exception type users see: a message that fits on one line and says what to do."""

from __future__ import annotations


class StgcnError(Exception):
    """A user-facing failure. ``str(err)`` is the whole message; the CLI prints it alone."""


class MissingDependency(StgcnError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed: "
            f"pip install 'stgcn-rt[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require(module: str, extra: str, purpose: str):  # noqa: ANN201 - returns a module
    """Import an optional dependency or raise :class:`MissingDependency` naming its extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, extra, purpose) from exc


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (libraries raise multi-line ones), for a one-line
    error; ``default`` (else the exception's type name) when the message is empty."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


def one_line(exc: BaseException) -> str:
    """An unexpected exception as one line: its type and its message's first line."""
    return f"{type(exc).__name__}: {first_line(exc)}"
