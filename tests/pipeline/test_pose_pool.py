"""A pose to come (PoseFuture): what the pipeline and a waiting caller see of it."""

import threading
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeoutError

import numpy as np
import pytest

from stgcn_rt.pipeline.pose_pool import PoseFuture, PoseResult


def pose() -> PoseResult:
    return PoseResult(np.zeros((1, 33, 3), np.float32), 1.0)


def test_callbacks_run_once_whether_added_before_or_after_the_pose_came():
    future, calls = PoseFuture(), []
    future.add_done_callback(calls.append)
    assert not future.done() and calls == []
    result = pose()
    future.set_result(result)
    future.add_done_callback(calls.append)  # already settled: run at once, by the adding thread
    assert future.done() and calls == [future, future] and future.result() is result


def test_a_failed_pose_raises_its_error_and_a_dropped_one_is_cancelled():
    failed = PoseFuture()
    failed.set_exception(RuntimeError("BlazePose's process stopped"))
    with pytest.raises(RuntimeError, match="process stopped"):
        failed.result(timeout=0)
    dropped = PoseFuture()
    assert dropped.cancel() and dropped.cancelled() and dropped.done() and not dropped.cancel()
    with pytest.raises(CancelledError):
        dropped.result()
    assert not failed.cancelled()


def test_result_waits_for_a_pose_settled_by_another_thread_or_times_out():
    future = PoseFuture()
    with pytest.raises(FutureTimeoutError):
        future.result(timeout=0.01)
    result = pose()
    threading.Timer(0.05, future.set_result, (result,)).start()
    assert future.result(timeout=30) is result
