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


def standing(x=300.0, y=100.0, width=60.0, height=200.0):
    """A (33, 3) pose in a 640x480 frame: landmarks spread over a width x height box at (x, y)."""
    rng = np.random.default_rng(0)
    points = np.column_stack([(x + rng.random(33) * width) / 640, (y + rng.random(33) * height) / 480,
                              np.ones(33)])
    return points.astype(np.float32)


def test_pose_similarity_tells_one_person_from_two():
    from stgcn_rt.pipeline.tracking import pose_similarity, same_person

    pose = standing()
    jittered = pose + np.array([4 / 640, -3 / 480, 0], np.float32)  # the same person posed twice
    beside = standing(x=360.0)  # another person, one body width to the side
    assert pose_similarity(pose, pose, 640, 480) == 1.0
    assert same_person(pose, jittered, 640, 480) and not same_person(pose, beside, 640, 480)
    hidden = pose.copy()
    hidden[:30, 2] = 0.0  # few landmarks visible in both: all of them are compared
    assert same_person(hidden, jittered, 640, 480)


def test_covered_and_forget():
    from stgcn_rt.pipeline.detect import covered

    assert covered(box(10, w=20, h=20), Box(0, 0, 100, 300)) == 1.0
    assert covered(box(0), box(30)) == pytest.approx(0.5)
    tracker = SlotTracker(slots=3)
    tracker.update([box(0), box(200)])
    tracker.forget(1)
    assert [t.slot for t in tracker.tracks] == [0]
    assert tracker.update([box(0), box(400)]) == {0: box(0), 1: box(400)}  # slot 1 is free again


def test_a_crop_that_poses_the_main_person_again_is_not_a_second_person(monkeypatch):
    """The detector's box lies beside the main person's, but MediaPipe on its crop finds the main
    person again: one person, one slot, and the duplicate's slot is freed."""
    from stgcn_rt.pipeline import pose_pool

    main = standing()
    camera = pose_pool.CameraPose.__new__(pose_pool.CameraPose)
    camera.persons, camera.tracker, camera.crops = 5, SlotTracker(5), {}
    camera.whole_frame = lambda image: main
    camera.detector = lambda image: [Box(360, 100, 440, 300)]
    monkeypatch.setattr(camera, "_crop_pose", lambda slot, image, found: main + 0.004)
    keypoints, boxes = camera(np.zeros((480, 640, 3), np.uint8))
    (slot,) = boxes
    assert np.array_equal(keypoints[slot], main) and np.delete(keypoints, slot, axis=0).max() == 0
    assert [t.slot for t in camera.tracker.tracks] == [slot]
    monkeypatch.setattr(camera, "_crop_pose", lambda slot, image, found: standing(x=360.0))
    keypoints, boxes = camera(np.zeros((480, 640, 3), np.uint8))
    assert sorted(boxes) == [0, 1] and keypoints[1].any()  # a real second person keeps a slot


def test_a_person_unseen_for_a_few_frames_comes_back_in_their_slot():
    """Lost for three frames, the person reappears moved by a box width (no overlap with the track's last
    box): the same slot, not a second one; someone appearing far away takes a new slot."""
    tracker = SlotTracker(slots=5)
    assert list(tracker.update([box(100)])) == [0]
    for _ in range(3):
        assert tracker.update([]) == {}
    assert list(tracker.update([box(170)])) == [0]
    assert sorted(tracker.update([box(175), box(500)])) == [0, 1]
