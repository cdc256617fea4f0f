"""The ONNX Runtime runner's batches on the CPU: their windows run across the cores (``parallel_windows``)."""

from __future__ import annotations

import numpy as np
import pytest

from stgcn_rt.runtime.backends.onnxruntime_runner import OnnxClassifier


def test_a_batch_runs_its_windows_across_the_cores_in_order(demo_models, real_windows):
    """Five windows on two cores give, row for row, the logits of one run of the whole batch; one
    window takes the multi-threaded session and makes no window threads."""
    _, onnx_path = demo_models
    # scaled so that the untrained demo network's logits differ from window to window
    windows = real_windows[:5] * np.arange(1, 6, dtype=np.float32)[:, None, None, None, None] ** 2
    with OnnxClassifier(onnx_path, threads=2, parallel_windows=False) as whole:
        expected = whole.logits(windows)
        assert whole.window_workers == 1
    with OnnxClassifier(onnx_path, threads=2) as parallel:
        assert parallel.window_workers == 2
        single = parallel.logits(windows[2:3])
        assert parallel._window_runner is None
        got = parallel.logits(windows)
        assert parallel._window_runner is not None
        runner = parallel._window_runner[1]
    assert np.abs(expected - expected[::-1]).max() > 0.1  # the windows' logits differ, so order shows
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(single, expected[2:3], rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="shutdown"):  # close() stopped the window threads
        runner.submit(print)


def test_a_static_batch_model_runs_its_chunks_across_the_cores(tmp_path, demo_models, real_windows):
    """A static batch of 2: five windows are three chunks, the last padded, spread over the cores."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint

    ckpt, _ = demo_models
    path, _ = export_onnx(load_checkpoint(ckpt), tmp_path / "batch2.onnx", ExportOptions(batch=2), validate=False)
    windows = real_windows[:5]
    with OnnxClassifier(path, threads=2, parallel_windows=False) as whole, OnnxClassifier(path, threads=2) as parallel:
        np.testing.assert_allclose(parallel.logits(windows), whole.logits(windows), rtol=0, atol=1e-5)
        assert parallel._window_runner is not None


def test_one_thread_keeps_one_session(demo_models, real_windows):
    _, onnx_path = demo_models
    with OnnxClassifier(onnx_path, threads=1) as model:
        model.logits(real_windows[:3])
        assert model.window_workers == 1 and model._window_runner is None


def test_fewer_windows_than_cores_keep_every_core_on_each_operator(demo_models, real_windows):
    """Three windows for four cores would leave a core idle a window at a time: one run, four threads."""
    _, onnx_path = demo_models
    with OnnxClassifier(onnx_path, threads=4) as model:
        model.logits(real_windows[:3])
        assert model.window_workers == 4 and model._window_runner is None
        model.logits(real_windows[:4])
        assert model._window_runner is not None
