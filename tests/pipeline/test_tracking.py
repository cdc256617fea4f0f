import numpy as np
import pytest

from stgcn_rt.pipeline.detect import Box, iou, non_max_suppression
from stgcn_rt.pipeline.tracking import SlotTracker


def box(x, y=100, w=60, h=160):
    return Box(x, y, x + w, y + h)


def test_iou_and_nms():
    assert iou(box(0), box(0)) == 1.0 and iou(box(0), box(200)) == 0.0
    assert iou(box(0), box(30)) == pytest.approx(30 / 90)
    kept = non_max_suppression([Box(0, 0, 10, 10, 0.9), Box(1, 1, 11, 11, 0.8), Box(50, 50, 60, 60, 0.7)])
    assert [b.score for b in kept] == [0.9, 0.7]


def test_people_keep_their_slots_while_moving_and_crossing_order():
    tracker = SlotTracker(slots=5)
    first = tracker.update([box(400, w=80), box(100)])  # larger box first -> slot 0
    assert first[0].x1 == 400 and first[1].x1 == 100
    for step in range(1, 20):  # they walk towards each other and swap sides slowly
        seen = tracker.update([box(100 + 8 * step), box(400 - 8 * step, w=80)])
        assert seen[0].x1 == 400 - 8 * step and seen[1].x1 == 100 + 8 * step


def test_slots_are_freed_after_the_timeout_and_reused_lowest_first():
    tracker = SlotTracker(slots=3, timeout=2)
    tracker.update([box(0), box(200), box(400)])
    for _ in range(3):
        seen = tracker.update([box(0), box(400)])  # the middle person left
    assert sorted(seen) == [0, 2]
    seen = tracker.update([box(0), box(400), box(250, y=300)])  # a newcomer takes the freed slot 1
    assert seen[1].x1 == 250


def test_more_people_than_slots_keeps_the_largest():
    tracker = SlotTracker(slots=2)
    seen = tracker.update([box(0, w=20), box(100, w=90), box(300, w=60)])
    assert sorted(b.x1 for b in seen.values()) == [100, 300]


def test_no_detections_keeps_tracks_until_timeout():
    tracker = SlotTracker(slots=2, timeout=1)
    tracker.update([box(0)])
    assert tracker.update([]) == {}
    assert tracker.tracks and tracker.update([box(2)]) == {0: box(2)}  # same person, same slot


def test_deterministic():
    rng = np.random.default_rng(0)
    frames = [[box(float(x)) for x in rng.integers(0, 500, size=rng.integers(0, 6))] for _ in range(50)]
    a, b = SlotTracker(), SlotTracker()
    assert [a.update(f) for f in frames] == [b.update(f) for f in frames]
