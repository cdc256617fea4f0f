"""Events as JSON Lines (appended and flushed line by line) and alerts with hysteresis.

A run appends to its events file: it opens with a ``run`` line (what ran, how, from which command),
and every line after it carries that run's id, so that runs appended to one file stay apart.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """A run's id: its UTC start to the second, then four random hex digits (sortable, and unique
    for runs started in the same second)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


class EventLog:
    """Appends one JSON object per line; each line is flushed and fsynced before returning, so an
    event that was reported is on disk even if the process is killed right after.

    ``stamp``: fields every event carries after its ``kind`` (the run id; ``untrained``). The file is
    opened at the first event, so a run that fails before it leaves no empty file.
    """

    def __init__(self, path: str | os.PathLike[str], stamp: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.stamp = dict(stamp or {})
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps({"kind": event["kind"], **self.stamp, **event}, separators=(",", ":")) + "\n"
        with self._lock:
            if self._handle is None:
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.counts[event["kind"]] = self.counts.get(event["kind"], 0) + 1

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and not self._handle.closed:
                self._handle.close()


@dataclass
class AlertState:
    active: bool = False
    above: int = 0  # consecutive windows at or above the threshold
    below: int = 0  # consecutive windows under the release level while active


class AlertPolicy:
    """Raise an alert after ``min_windows`` consecutive windows with p(class) >= threshold; clear it
    after ``min_windows`` consecutive windows under ``threshold - hysteresis``. One noisy window
    neither raises nor clears an alert."""

    def __init__(self, alert_class: int, threshold: float = 0.8, min_windows: int = 3,
                 hysteresis: float = 0.1) -> None:
        self.alert_class = alert_class
        self.threshold = threshold
        self.release = threshold - hysteresis
        self.min_windows = min_windows
        self.states: dict[str, AlertState] = {}

    def update(self, camera: str, probability: float) -> str | None:
        """Feed one window's probability; returns "raised", "cleared" or None."""
        state = self.states.setdefault(camera, AlertState())
        if not state.active:
            state.above = state.above + 1 if probability >= self.threshold else 0
            if state.above >= self.min_windows:
                state.active, state.below = True, 0
                return "raised"
            return None
        state.below = state.below + 1 if probability < self.release else 0
        if state.below >= self.min_windows:
            state.active, state.above = False, 0
            return "cleared"
        return None
