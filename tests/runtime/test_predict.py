import numpy as np
import pytest

from stgcn_rt.errors import StgcnError
from stgcn_rt.runtime.predict import SkeletonWindow, predict_action, stack_frames


def frames(count, value_of=lambda i: i + 1.0, shape=(3, 5, 1)):
    return [np.full(shape, value_of(i), np.float32) for i in range(count)]


def test_short_buffer_is_followed_by_zero_frames():
    window = stack_frames(frames(4), seq_len=8)
    assert window.shape == (3, 8, 5, 1)
    assert window[0, :, 0, 0].tolist() == [1, 2, 3, 4, 0, 0, 0, 0]


def test_long_buffer_keeps_the_last_frames():
    window = stack_frames(frames(12), seq_len=8)
    assert window[0, :, 0, 0].tolist() == [5, 6, 7, 8, 9, 10, 11, 12]


def test_inconsistent_or_empty_buffers_are_errors():
    with pytest.raises(StgcnError, match="empty"):
        stack_frames([], 8)
    with pytest.raises(StgcnError, match="one shape"):
        stack_frames(frames(2) + frames(1, shape=(3, 4, 1)), 8)


def test_predict_action_matches_predict_on_the_padded_window(mean_classifier):
    buffer = frames(3)
    result = predict_action(buffer, mean_classifier)
    expected = mean_classifier.predict(stack_frames(buffer, 8)[None])[0]
    assert result.probabilities == pytest.approx(tuple(expected))
    assert result.label == "high" and result.index == 1
    assert result.confidence == pytest.approx(max(expected))
    assert sum(result.probabilities) == pytest.approx(1.0)


def test_ring_buffer_stride_and_frame_range():
    ring = SkeletonWindow(seq_len=4, stride=3)
    due = [ring.push(f) for f in frames(9, shape=(3, 5, 1))]
    assert due == [False, False, True, False, False, True, False, False, True]
    assert ring.first_frame == 5 and ring.count == 9
    assert ring.window()[0, :, 0, 0].tolist() == [6, 7, 8, 9]
    ring.reset()
    assert ring.count == 0 and ring.first_frame == 0
    with pytest.raises(StgcnError):
        SkeletonWindow(seq_len=0)


def test_a_first_window_waits_for_min_frames():
    ring = SkeletonWindow(seq_len=4, stride=2, min_frames=4)
    assert [ring.push(f) for f in frames(8, shape=(3, 5, 1))] == [False, False, False, True, False, True, False, True]
    with pytest.raises(StgcnError, match="1 to the window's 4, got 5"):
        SkeletonWindow(seq_len=4, min_frames=5)


def test_ring_windows_are_the_last_frames_stacked_as_the_roadmap_does():
    rng = np.random.default_rng(0)
    ring, pushed = SkeletonWindow(seq_len=6, stride=1), []
    for _ in range(20):  # past three wrap-arounds; the frames given as views, as the pipeline does
        frame = rng.random((5, 4, 3), np.float32)
        pushed.append(frame.transpose(2, 1, 0))
        ring.push(pushed[-1])
        window = ring.window()
        assert np.array_equal(window, stack_frames(pushed, 6))
        window[:] = -1  # a window is the caller's own copy
    assert np.array_equal(ring.window(), stack_frames(pushed, 6))
    with pytest.raises(StgcnError, match="one shape"):
        ring.push(np.zeros((3, 5, 1), np.float32))
    with pytest.raises(StgcnError, match="empty"):
        SkeletonWindow(seq_len=4).window()
    with pytest.raises(StgcnError, match=r"\(C, V, M\) arrays, got shape \(3, 5\)"):
        SkeletonWindow(seq_len=4).push(np.zeros((3, 5), np.float32))
    listed = SkeletonWindow(seq_len=2)  # nested lists, as the roadmap's buffers may hold
    listed.push([[[0.5]], [[0.25]]])
    assert listed.window().dtype == np.float32 and listed.window()[:, 0, 0, 0].tolist() == [0.5, 0.25]
