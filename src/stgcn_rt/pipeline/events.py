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


#: how often written lines are forced to the disk (fsync), at most: a power cut loses at most this much
SYNC_SECONDS = 0.2


class EventLog:
    """Appends one JSON object per line. Each line is written and flushed to the operating system
    before :meth:`write` returns, so a process killed right after loses none of it; a thread fsyncs
    the file at most every SYNC_SECONDS while lines wait (and :meth:`close` at the end), so a power
    cut loses at most that much. An fsync per line instead would put the disk's flush, a
    millisecond to tens on a cloud volume, between every two windows the classifier hands on.

    ``stamp``: fields every event carries after its ``kind`` (the run id; ``untrained``). The file is
    opened at the first event, so a run that fails before it leaves no empty file.
    """

    def __init__(self, path: str | os.PathLike[str], stamp: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.stamp = dict(stamp or {})
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()
        self._unsynced = False
        self._closing = threading.Event()
        self._syncer: threading.Thread | None = None
        self.counts: dict[str, int] = {}

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps({"kind": event["kind"], **self.stamp, **event}, separators=(",", ":")) + "\n"
        with self._lock:
            if self._handle is None:
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
                self._syncer = threading.Thread(target=self._sync_until_closed, name="events-fsync", daemon=True)
                self._syncer.start()
            self._handle.write(line)
            self._handle.flush()
            self._unsynced = True
            self.counts[event["kind"]] = self.counts.get(event["kind"], 0) + 1

    def _sync_until_closed(self) -> None:
        while not self._closing.wait(SYNC_SECONDS):
            with self._lock:
                descriptor = self._handle.fileno() if self._unsynced and self._handle is not None else None
                self._unsynced = False
            if descriptor is not None:
                os.fsync(descriptor)  # outside the lock: lines go on being written meanwhile

    def close(self) -> None:
        self._closing.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._lock:
            if self._handle is not None and not self._handle.closed:
                if self._unsynced:
                    os.fsync(self._handle.fileno())
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
