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
