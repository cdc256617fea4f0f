"""BlazePose in PyTorch against MediaPipe itself: the graph's geometry, OpenCV's crop, the heatmap
refinement, the smoothing filters, and whole videos in video mode (tracking and smoothing on)."""

import math

import numpy as np
import pytest
import torch

from stgcn_rt.pose import geometry
from stgcn_rt.pose.filters import LandmarkFilters

pytest.importorskip("tflite")


def test_ssd_anchors_follow_the_detector_outputs():
    anchors = geometry.ssd_anchors()
    assert anchors.shape == (2254, 2)  # 28 x 28 x 2 + 14 x 14 x 2 + 7 x 7 x 6
    assert np.allclose(anchors[0], [0.5 / 28, 0.5 / 28]) and np.allclose(anchors[2], [1.5 / 28, 0.5 / 28])
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14]) and np.allclose(anchors[1960:1966], [0.5 / 7, 0.5 / 7])


def test_weighted_nms_averages_the_overlapping_detections():
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    boxes = np.array([[0, 0, 1, 1], [0.1, 0, 1.1, 1], [2, 2, 3, 3]], np.float32)
    keypoints = np.stack([boxes.reshape(3, 2, 2)] * 2, axis=1).reshape(3, 4, 2)
    kept, merged, points = geometry.weighted_nms(scores, boxes, keypoints)
    assert kept.tolist() == pytest.approx([0.9, 0.8])
    assert merged[0].tolist() == pytest.approx([0.04, 0, 1.04, 1])  # (0.9 * 0 + 0.6 * 0.1) / 1.5
    assert merged[1].tolist() == pytest.approx([2, 2, 3, 3]) and points.shape == (2, 4, 2)


def test_an_upright_person_gets_an_unrotated_square_roi():
    """Hip centre below the scale point (the head end): no rotation; the box twice their distance,
    square in pixels, with MediaPipe's 1.25 margin."""
    upright, tilted = geometry.alignment_rects(np.array([[0.5, 0.6], [0.5, 0.6]]),
                                              np.array([[0.5, 0.35], [0.6, 0.6]]), 640, 480)
    x, y, width, height, rotation = upright
    assert (x, y, rotation) == pytest.approx((0.5, 0.6, 0.0))
    assert width * 640 == pytest.approx(height * 480) == pytest.approx(0.25 * 480 * 2 * 1.25)
    assert tilted[4] == pytest.approx(math.pi / 2)  # lying to the right: a quarter turn


def test_landmarks_project_back_through_their_rotated_roi():
    """A crop's centre lands on the ROI's centre; its right edge, in a ROI turned a quarter clockwise,
    lands below the centre by half the ROI's height."""
    rois = np.array([[0.4, 0.6, 0.2, 0.3, math.pi / 2]])
    got = geometry.project(np.array([[[0.5, 0.5], [1.0, 0.5]]]), rois)
    assert got[0].tolist() == [pytest.approx([0.4, 0.6]), pytest.approx([0.4, 0.75])]


def test_crops_are_sampled_as_opencv_samples_them(videos):
    """The rotated crop of a real frame against cv2.warpPerspective from cv2.boxPoints, as MediaPipe's
    converter makes it, and the letterbox: bit for bit (OpenCV's fixed point) but for a few rounded points."""
    cv2 = pytest.importorskip("cv2")
    from stgcn_rt.pose.blazepose import warp

    capture = cv2.VideoCapture(str(videos["skateboarding"]))
    image = cv2.cvtColor(cv2.resize(capture.read()[1], (640, 480)), cv2.COLOR_BGR2RGB)
    for roi, replicate in ((np.array([0.55, 0.5, 0.48, 0.64, -1.03]), True), (geometry.WHOLE_FRAME, False)):
        size = 256 if replicate else 224
        x, y, width, height, rotation = roi
        box = ((x * 640, y * 480), (width * 640, height * 480), math.degrees(rotation))
        if not replicate:  # the detector's letterbox: the whole frame padded to a square
            box = ((320, 240), (640, 640), 0.0)
        corners = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
        matrix = cv2.getPerspectiveTransform(cv2.boxPoints(box).astype(np.float32), corners)
        expected = cv2.warpPerspective(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT)
        affine = torch.from_numpy(geometry.crop_affines(roi[None], 640, 480, size))
        got = warp(torch.from_numpy(image[None]), torch.tensor([0]), affine, size, replicate)[0].numpy()
        diff = np.abs(got - expected)
        # bit for bit but where OpenCV's matrix (from float32 corners) rounds a point to another
        # 1/32 of a pixel than ours: 17 of 196,608 values here (a float bilinear: 322, and 114 of the letterbox's)
        assert diff.max() <= 1 and (diff != 0).mean() < 2e-4
        assert replicate or (diff == 0).all()


def test_one_euro_passes_the_first_value_and_follows_a_jump():
    """Two tracks, one landmark (x, y, z, visibility): each track keeps its own state; a reset one
    starts over."""
    filters = LandmarkFilters(np.array([[0.01, 10.0, 1.0]]))
    rows = filters.add(2)

    def step(stamp, values, which=rows):
        landmarks = np.array([[[v, v, v, 1.0]] for v in values], np.float32)  # (R, 1, 4)
        return filters.apply(which, landmarks, np.full(len(which), stamp), 100, 100, np.full(len(which), 100.0))

    assert np.allclose(step(33333, [0.05, 0.5])[:, 0, :3].T, [0.05, 0.5])
    assert np.allclose(step(66666, [0.05, 0.5])[:, 0, :3].T, [0.05, 0.5])
    moved = step(99999, [0.15, 0.5])
    assert (0.05 < moved[0, 0, :3]).all() and (moved[0, 0, :3] < 0.15).all()  # towards the new value, not to it
    assert np.allclose(moved[1, 0, :3], 0.5)  # the other track did not move
    assert np.allclose(step(99999, [0.99, 0.99])[:, 0, :3], 0.99)  # a repeated stamp passes its values
    filters.reset(rows[:1])
    landmarks = np.array([[[0.7, 0.7, 0.7, 0.0]]], np.float32)
    again = filters.apply(rows[:1], landmarks, np.array([133332]), 100, 100, np.array([100.0]))
    assert np.allclose(again[0, 0, :3], 0.7)  # started over: the first value passes
    # ... but not the visibility's: MediaPipe's low-pass of it does not run on a frame without
    # landmarks, so it is not reset: 0.1 x 0.0 + 0.9 x the 1.0 before
    assert again[0, 0, 3] == pytest.approx(0.9)


@pytest.fixture(scope="module")
def agreement(videos):
    """Per video: BlazePose here and MediaPipe's own solution (video mode, model_complexity 1,
    smoothing on) frame by frame at 640x480: (frames each found a person in, frames both did,
    distances of the visible landmarks as fractions of the frame's long side, the visibilities'
    differences)."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    from stgcn_rt.pipeline.pose import PoseEstimator
    from stgcn_rt.pose.blazepose import BlazePose

    out = {}
    for name, path in videos.items():
        capture = cv2.VideoCapture(str(path))
        ours, theirs, same, distances, visibilities = BlazePose(), PoseEstimator(), 0, [], []
        frames = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            image = cv2.resize(image, (640, 480))
            a, b = ours.process({name: image})[name], theirs(image)
            frames += 1
            same += (a is None) == (b is None)
            if a is not None and b is not None:
                visible = b[:, 2] > 0.5
                distances.append(np.hypot((a[visible, 0] - b[visible, 0]) * 640, (a[visible, 1] - b[visible, 1]) * 480)
                                 / 640)
                visibilities.append(np.abs(a[:, 2] - b[:, 2]))
        theirs.close()
        out[name] = (frames, same, np.concatenate(distances), np.concatenate(visibilities))
    return out


def test_landmarks_agree_with_mediapipe_on_the_real_videos(agreement):
    """The issue's bounds: mean distance <= 1% of the long side, 95th percentile <= 2.5%; a person
    in the same frames: 97.3% and 96.7% measured over both videos on two CPUs (skateboarding 94.7%
    and 93.3%), asserted with a margin for others: the free-running trackers amplify any rounding
    (docs/performance.md, sessions 28 and 37)."""
    frames = sum(f for f, _, _, _ in agreement.values())
    same = sum(s for _, s, _, _ in agreement.values())
    distances = np.concatenate([d for _, _, d, _ in agreement.values()])
    print({name: (f, s, float(d.mean()), float(np.percentile(d, 95)), float(v.mean()))
           for name, (f, s, d, v) in agreement.items()})
    assert distances.mean() <= 0.01 and np.percentile(distances, 95) <= 0.025
    assert same / frames >= 0.95
    frames, same, distances, visibilities = agreement["clean_and_jerk"]
    assert same == frames and distances.mean() <= 0.001  # one lifter, always in view: all but exact
    assert visibilities.max() <= 0.01
    # the skater is lost and found again: visibilities carried over the gaps as MediaPipe carries
    # them, 0.009 on average here (0.034 had they started over each time)
    assert agreement["skateboarding"][3].mean() <= 0.02


def test_a_batch_that_runs_out_of_device_memory_is_split():
    from stgcn_rt.pose.blazepose import BlazePoseNetworks

    networks = BlazePoseNetworks()
    sizes = []

    def small_device(x):
        sizes.append(len(x))
        if len(x) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [x * 2, x.sum(dim=(1, 2, 3))]

    inputs = torch.arange(10 * 2 * 2 * 3, dtype=torch.float32).reshape(10, 2, 2, 3)
    doubled, sums = networks._run(small_device, (), inputs)
    torch.testing.assert_close(doubled, inputs * 2)
    torch.testing.assert_close(sums, inputs.sum(dim=(1, 2, 3)))
    assert sizes == [10, 5, 2, 2, 2, 2, 2] and networks.max_batch == 2
    networks._run(small_device, (), inputs[:3])
    assert sizes[-2:] == [2, 1]  # later calls start at the size that fitted

    def no_memory(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        networks._run(no_memory, (), inputs)


def test_a_gpu_runs_few_batch_shapes(monkeypatch):
    """On a GPU a network call is padded to its bucket (powers of two to 64, then multiples of 64), so
    that cuDNN meets few shapes, all warmed up before the cameras start; the padding never shows."""
    from stgcn_rt.pose.blazepose import BlazePose, BlazePoseNetworks, _warm_up_batches, batch_bucket

    assert [batch_bucket(n) for n in (1, 3, 5, 64, 65, 200, 257)] == [1, 4, 8, 64, 128, 256, 320]
    assert _warm_up_batches(200, gpu=True) == [1, 2, 4, 8, 16, 32, 64, 128, 192, 256]
    assert _warm_up_batches(200, gpu=False) == [1]
    networks = BlazePoseNetworks()
    networks.device = torch.device("cuda")  # what _run pads by; the tensors stay on the CPU here
    sizes = []

    def network(x):
        sizes.append(len(x))
        return [x * 2]

    inputs = torch.rand(5, 2, 2, 3)
    (doubled,) = networks._run(network, (), inputs)
    assert sizes == [8] and torch.equal(doubled, inputs * 2)
    pose = BlazePose(persons=5)
    calls = []
    monkeypatch.setattr(pose.networks, "device", torch.device("cuda"))
    def frames(images):  # the stream's frame buffer, sized for every camera
        calls.append(("frames", len(images)))
        return torch.zeros(len(images), 48, 64, 3, dtype=torch.uint8)

    monkeypatch.setattr(pose.networks, "frames", frames)
    monkeypatch.setattr(pose.networks, "detect", lambda frames, which: calls.append(("detect", len(which))))
    monkeypatch.setattr(pose.networks, "landmarks", lambda frames, which, rois: calls.append(("landmarks", len(which))))
    pose.warm_up(cameras=3)  # 3 cameras, 5 slots each: up to 9 detector regions and 15 landmark crops
    assert calls == [("frames", 3)] + [("detect", n) for n in (1, 2, 4, 8, 16)] + [
        ("landmarks", n) for n in (1, 2, 4, 8, 16)]


def frames_of(path, count, size=(640, 480)):
    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(str(path))
    return [cv2.resize(capture.read()[1], size) for _ in range(count)]


def test_several_persons_keep_their_own_slots(videos):
    """Two lifters side by side (the clip and its mirror image, each at half size). On the whole frame
    BlazePose's detector scores only the more prominent one over 0.5 (MediaPipe's is made for one
    person); in the frame's square halves it finds each (on the first frame the left one's keypoints
    are too close together to track, so that person comes at the next look, DETECT_EVERY frames on).
    The whole frame's person holds slot 0 throughout, the other slot 1 once found, and the other
    three slots stay empty."""
    cv2 = pytest.importorskip("cv2")
    from stgcn_rt.pose.blazepose import DETECT_EVERY, BlazePose

    clip = frames_of(videos["clean_and_jerk"], 42, (320, 240))
    band = np.zeros((120, 640, 3), np.uint8)
    scenes = [np.vstack([band, np.hstack([a, cv2.flip(b, 1)]), band]) for a, b in zip(clip, clip[30:])]
    pose = BlazePose(persons=5)
    whole = pose.networks.detect(pose.networks.frames(scenes[:1]), [0])[0]
    assert len(whole[0]) == 1 and whole[2][0, 0, 0] > 0.5  # the right one alone
    sides = []
    for scene in scenes:
        slots = pose.process_persons({"cam": scene})["cam"]
        found = np.flatnonzero(slots.reshape(5, -1).any(axis=1))
        sides.append({int(s): bool(np.median(slots[s, :, 0]) < 0.5) for s in found})
    both = next(i for i, side in enumerate(sides) if len(side) == 2)
    assert both <= DETECT_EVERY and all(side == {0: False} for side in sides[:both]), sides
    assert all(side == {0: False, 1: True} for side in sides[both:]), sides


def test_one_person_never_fills_two_slots(videos):
    """The one-person skateboarding clip at M=5: the detector's later looks at the tracked person never
    keep a second slot, and slot 0 is the person the single-person graph follows (the pipeline's own
    test of one person, issue 35's). Not bit for bit: where the person is lost and found again the
    detector looks at three regions here and one there, on some CPUs the convolutions round a batch
    of three otherwise than one, and tracking carries the difference on (1% of the frame at most on
    an AMD EPYC)."""
    from stgcn_rt.pipeline.tracking import same_person
    from stgcn_rt.pose.blazepose import BlazePose

    one, five = BlazePose(), BlazePose(persons=5)
    for image in frames_of(videos["skateboarding"], 120):
        single, slots = one.process({"cam": image})["cam"], five.process_persons({"cam": image})["cam"]
        assert not slots[1:].any()
        if single is None:
            assert not slots[0].any()
        else:
            assert same_person(slots[0], single, 640, 480)
