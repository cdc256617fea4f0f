"""N concurrent clients, each sending one window and waiting for its answer (closed loop): a Triton
server against the in-process batching scheduler on the same model."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Tuple

import numpy as np

from stgcn_rt.bench.measure import percentiles_ms
from stgcn_rt.runtime.classifier import Classifier
from stgcn_rt.runtime.scheduler import BatchScheduler

#: a client: (send one window and wait for its probabilities, release the client)
Client = Tuple[Callable[[np.ndarray], Any], Callable[[], None]]  # typing's Tuple: a runtime alias on Python 3.8


def closed_loop(make_client: Callable[[int], Client], clients: int, seconds: float, windows: np.ndarray
                ) -> dict[str, Any]:
    """Every client sends batch-1 requests back to back for ``seconds``; failures are counted."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    made = [make_client(i) for i in range(clients)]
    start = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        call = made[i][0]
        start.wait()
        deadline = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < deadline:
            window = windows[(i + n) % len(windows)][None]
            n += 1
            began = time.perf_counter()
            try:
                call(window)
            except Exception:  # counted: a benchmark reports failures, it does not stop on them
                errors[i] += 1
                continue
            latencies[i].append(time.perf_counter() - began)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    for _, close in made:
        close()
    every = [seconds for lat in latencies for seconds in lat]
    p50, p99 = percentiles_ms(every)
    return {"clients": clients, "completed": len(every), "errors": int(sum(errors)),
            "windows_per_s": float(len(every) / elapsed), "p50_ms": p50, "p99_ms": p99}


def remote_clients(url: str) -> Callable[[int], Client]:
    """One Triton client per thread (tritonclient's clients are not shared between threads)."""
    from stgcn_rt.runtime import load_classifier

    def make(_: int) -> Client:
        classifier = load_classifier(url)
        return classifier.predict, classifier.close

    return make


def scheduler_clients(classifier: Classifier, max_batch: int = 64, max_wait_ms: float = 2.0
                      ) -> tuple[Callable[[int], Client], BatchScheduler]:
    """Clients of one in-process scheduler; close the returned scheduler after the run."""
    scheduler = BatchScheduler(classifier, max_batch=max_batch, max_wait_ms=max_wait_ms)

    def make(i: int) -> Client:
        return (lambda window: scheduler.submit(i, window[0]).result().probabilities), (lambda: None)

    return make, scheduler
