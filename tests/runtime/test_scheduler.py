import threading
from concurrent.futures import wait

import numpy as np
import pytest
from helpers import MeanClassifier

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime import load_classifier
from stgcn_rt.runtime.scheduler import BatchScheduler, WindowDropped


def window(value, shape=(3, 8, 5, 1)):
    return np.full(shape, value, np.float32)


def submit_from_threads(scheduler, windows_by_camera, threads=8):
    """Each thread plays several cameras, submitting their windows in order."""
    futures = {}
    cameras = sorted(windows_by_camera)
    lock = threading.Lock()

    def play(mine):
        for camera in mine:
            for i, w in enumerate(windows_by_camera[camera]):
                f = scheduler.submit(camera, w, meta=i)
                with lock:
                    futures[(camera, i)] = f

    workers = [threading.Thread(target=play, args=(cameras[k::threads],)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return futures


def held_scheduler(model, **options):
    """A scheduler whose worker is held inside ``model`` (on its gate) by a first window of camera
    "a", so that everything submitted next stays queued until the gate opens."""
    scheduler = BatchScheduler(model, **options)
    first = scheduler.submit("a", window(0.0))
    while scheduler.depth:
        pass
    return scheduler, first


def test_64_cameras_get_exactly_the_single_call_result(short_windows_model, real_windows):
    """Real model (ONNX Runtime, dynamic batch): every batched result equals a single predict."""
    rng = np.random.default_rng(0)
    by_camera = {f"cam{c:02d}": [real_windows[rng.integers(len(real_windows)), :, 40:70] * rng.uniform(0.5, 1.0)
                                 for _ in range(2)] for c in range(64)}
    with load_classifier(short_windows_model) as model:
        with BatchScheduler(model, max_batch=16, max_wait_ms=20, queue_size=256) as scheduler:
            futures = submit_from_threads(scheduler, by_camera)
        assert all(f.done() for f in futures.values())
        for (camera, i), future in futures.items():
            result = future.result()
            assert result.camera == camera and result.meta == i
            single = model.predict(by_camera[camera][i][None].astype(np.float32))[0]
            np.testing.assert_array_equal(result.probabilities, single)
        assert scheduler.stats.totals()["completed"] == 128
        assert max(scheduler.stats.batch_sizes) > 1  # windows really were batched


class PowerOfTwoBuckets(MeanClassifier):
    """Pads every batch to the next power of two, as CUDA graphs per batch bucket do."""

    def unpadded_batch(self, count):
        return 1 << (count.bit_length() - 1)


def test_batches_never_run_padded():
    gate = threading.Event()
    model = PowerOfTwoBuckets(gate=gate)
    scheduler, first = held_scheduler(model, max_batch=128, max_wait_ms=0, queue_size=1000)
    futures = [scheduler.submit(i % 7, window(i / 100)) for i in range(100)]
    gate.set()
    scheduler.close()
    assert model.batches == [1, 64, 32, 4]  # 100 waiting windows run as 64 + 32 + 4, not one padded 128
    assert first.done() and all(f.result().probabilities is not None for f in futures)


def test_fairness_no_camera_starves(mean_classifier):
    by_camera = {c: [window(c + k / 100) for k in range(20)] for c in range(64)}
    with BatchScheduler(mean_classifier, max_batch=32, max_wait_ms=2, queue_size=4096) as scheduler:
        futures = submit_from_threads(scheduler, by_camera, threads=16)
        wait(list(futures.values()), timeout=30)
    stats = scheduler.stats
    assert set(stats.completed.values()) == {20} and len(stats.completed) == 64
    for (camera, k), future in futures.items():
        expected = camera + k / 100
        assert future.result().probabilities == pytest.approx(
            mean_classifier.predict(window(expected)[None])[0])
        assert future.result().latency_s >= 0


def test_back_pressure_drops_the_oldest_window_of_that_camera():
    gate = threading.Event()
    scheduler, first = held_scheduler(MeanClassifier(gate=gate), max_batch=1, max_wait_ms=0, queue_size=3)
    a = [scheduler.submit("a", window(i)) for i in (1, 2)]
    b = scheduler.submit("b", window(9))
    late_a = scheduler.submit("a", window(3))  # queue full: a's oldest queued window (1) goes
    late_b = scheduler.submit("b", window(8))  # full again: b's oldest (9) goes, not a's
    gate.set()
    scheduler.close()
    with pytest.raises(WindowDropped, match="camera a dropped"):
        a[0].result()
    with pytest.raises(WindowDropped, match="camera b dropped"):
        b.result()
    for fut in (first, a[1], late_a, late_b):
        assert fut.result().probabilities is not None
    assert scheduler.stats.dropped == {"a": 1, "b": 1}
    totals = scheduler.stats.totals()
    assert totals["submitted"] == totals["completed"] + totals["dropped"] == 6


def test_camera_without_queued_windows_evicts_the_busiest():
    gate = threading.Event()
    scheduler, _ = held_scheduler(MeanClassifier(gate=gate), max_batch=1, max_wait_ms=0, queue_size=2)
    old = scheduler.submit("a", window(1))
    scheduler.submit("a", window(2))
    newcomer = scheduler.submit("b", window(3))
    gate.set()
    scheduler.close()
    with pytest.raises(WindowDropped):
        old.result()
    assert newcomer.result().camera == "b"


def test_close_classifies_everything_queued(mean_classifier):
    scheduler = BatchScheduler(mean_classifier, max_batch=8, max_wait_ms=50, queue_size=1000)
    futures = [scheduler.submit(i % 5, window(i / 300)) for i in range(300)]
    scheduler.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert scheduler.stats.totals()["completed"] == 300
    with pytest.raises(StgcnError, match="closed"):
        scheduler.submit(0, window(0))


def test_failed_batch_reports_and_worker_continues():
    model = MeanClassifier(fail_on=7.0)
    results = []
    scheduler = BatchScheduler(model, max_batch=1, max_wait_ms=0, on_result=results.append)
    bad = scheduler.submit("x", window(7.0))
    good = scheduler.submit("x", window(1.0))
    scheduler.close()
    with pytest.raises(RuntimeError, match="planted"):
        bad.result()
    assert good.result().probabilities[1] > 0.5
    assert scheduler.stats.failed["x"] == 1 and [r.meta for r in results] == [None]


def test_submit_checks_the_window_shape(mean_classifier):
    with BatchScheduler(mean_classifier) as scheduler:
        with pytest.raises(StgcnError, match="expects"):
            scheduler.submit("x", np.zeros((3, 9, 5, 1), np.float32))


class LaunchingClassifier(MeanClassifier):
    """Records when each batch is launched and when it is waited for (its first window's value)."""

    launches_asynchronously = True

    def __init__(self, **options):
        super().__init__(**options)
        self.events = []

    def launch(self, windows):
        self.events.append(("launch", float(windows[0, 0, 0, 0, 0])))
        if self.gate is not None:
            self.gate.wait(10)
        probabilities = self.predict(windows)

        def wait():
            self.events.append(("wait", float(windows[0, 0, 0, 0, 0])))
            return probabilities
        return wait


@pytest.mark.parametrize("overlap", [True, False])
def test_next_due_batch_is_launched_before_the_running_one_is_waited_for(overlap):
    gate = threading.Event()
    model = LaunchingClassifier(gate=gate)
    scheduler, first = held_scheduler(model, max_batch=2, max_wait_ms=0, overlap=overlap)
    later = [scheduler.submit("b", window(v)) for v in (1.0, 1.0, 2.0, 2.0)]
    gate.set()
    scheduler.close()
    assert [f.result().batch_size for f in [first, *later]] == [1, 2, 2, 2, 2]
    if overlap:
        assert model.events == [("launch", 0.0), ("launch", 1.0), ("wait", 0.0), ("launch", 2.0), ("wait", 1.0),
                                ("wait", 2.0)]
    else:  # one batch at a time
        assert model.events == [(kind, value) for value in (0.0, 1.0, 2.0) for kind in ("launch", "wait")]


def test_a_running_batch_does_not_wait_for_the_next_ones_deadline():
    """With one window queued and its deadline seconds away, the batch in flight is finished now."""
    scheduler = BatchScheduler(LaunchingClassifier(), max_batch=2, max_wait_ms=5000)
    running = [scheduler.submit("a", window(v)) for v in (1.0, 1.0)]  # a full batch: runs at once
    queued = scheduler.submit("b", window(2.0))
    assert all(f.result(timeout=2).batch_size == 2 for f in running)
    assert not queued.done()
    scheduler.close()  # classifies what is queued
    assert queued.result().batch_size == 1


def test_a_backend_that_finishes_inside_launch_runs_one_batch_at_a_time():
    """Overlapping would only hold a finished batch's results back while the next one runs."""
    model = LaunchingClassifier()
    model.launches_asynchronously = False
    with BatchScheduler(model) as scheduler:
        assert not scheduler.overlap
    with BatchScheduler(LaunchingClassifier()) as scheduler:
        assert scheduler.overlap


def test_a_result_tells_its_queue_wait_from_its_batch_run():
    """A window queued behind a held batch waited in the queue; its own batch ran at once."""
    import time

    gate = threading.Event()
    scheduler, first = held_scheduler(MeanClassifier(gate=gate), max_batch=1, max_wait_ms=0)
    queued = scheduler.submit("b", window(1.0))
    time.sleep(0.2)
    gate.set()
    scheduler.close()
    held, behind = first.result(), queued.result()
    assert held.run_s >= 0.2 and held.queue_s < 0.1  # the first batch was held while it ran
    assert behind.queue_s >= 0.2 and behind.run_s < 0.1
    assert behind.latency_s == pytest.approx(behind.queue_s + behind.run_s)
