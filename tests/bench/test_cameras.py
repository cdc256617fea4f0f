import threading

import numpy as np

from stgcn_rt.bench.cameras import thread_design


def test_thread_design_counts_failing_windows_as_dropped():
    """A thread per camera that fails (out of GPU memory in the roadmap's design) loses windows; they
    must be counted, not vanish with the thread, and the first error is kept."""
    calls = []
    lock = threading.Lock()

    def run_one(window, stream):
        with lock:
            calls.append(stream)
            if len(calls) % 2 == 0:
                raise RuntimeError("CUDA error: out of memory\nmore detail")

    windows = np.zeros((2, 3, 8, 5, 1), np.float32)
    result = thread_design(run_one, lambda: "stream", cameras=4, stride=5, seconds=1.0, windows=windows)
    assert result["expected"] == 4 * 5  # 5 windows per camera in one second at 25 fps, stride 5
    assert result["completed"] + result["dropped"] == result["expected"]
    assert result["errors"] == len(calls) // 2 and result["dropped"] >= result["errors"] > 0
    assert result["first_error"] == "RuntimeError: CUDA error: out of memory"
    assert not result["ok"]


def test_a_camera_without_a_stream_loses_every_window():
    def make_stream():
        raise RuntimeError("cannot create a CUDA stream")

    windows = np.zeros((1, 3, 8, 5, 1), np.float32)
    result = thread_design(lambda w, s: None, make_stream, cameras=3, stride=5, seconds=0.4, windows=windows)
    assert result["completed"] == 0 and result["dropped"] == result["expected"] == 3 * 2
    assert result["errors"] == 3 and "cannot create a CUDA stream" in result["first_error"]

