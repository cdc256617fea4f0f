"""The geometry of MediaPipe's pose graph (v0.10.21, ``mediapipe/modules/pose_*``), in numpy: SSD
anchors, detection decoding and weighted non-max suppression, the region of interest (ROI) from two
alignment points, the crop's affine map with OpenCV's conventions, and the projection of landmarks
back to the image. All coordinates are normalised to the image (x / width, y / height) unless named
pixels; a rectangle's rotation is in radians, clockwise in image coordinates. Functions take
and give many at once (arrays with a leading axis R).
"""

from __future__ import annotations

import math

import numpy as np

DETECTOR_SIZE = 224  # pose_detection.tflite's input
LANDMARK_SIZE = 256  # pose_landmark_full.tflite's input
#: the SSD anchors' layers: strides 8, 16, 32, 32, 32 over the 224 input, two anchors per cell in each
#: (an aspect ratio of 1 and the interpolated scale), all of fixed size 1
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
MIN_DETECTION_SCORE = 0.5  # TensorsToDetectionsCalculator's min_score_thresh (min_detection_confidence)
SCORE_CLIPPING = 100.0
SUPPRESSION_IOU = 0.3  # NonMaxSuppressionCalculator, WEIGHTED, INTERSECTION_OVER_UNION
ROI_SCALE = 1.25  # RectTransformationCalculator: scale 1.25, square_long
#: a region of interest (ROI) is a row of 5: centre x, y, width, height (normalised) and rotation
WHOLE_FRAME = np.array([0.5, 0.5, 1.0, 1.0, 0.0])


def ssd_anchors() -> np.ndarray:
    """The detector's 2,254 anchor centres (x, y) in [0, 1], in the order of its outputs."""
    centres = []
    layer = 0
    while layer < len(ANCHOR_STRIDES):
        end = layer  # consecutive layers of one stride share a grid
        while end < len(ANCHOR_STRIDES) and ANCHOR_STRIDES[end] == ANCHOR_STRIDES[layer]:
            end += 1
        per_cell = 2 * (end - layer)  # aspect ratio 1 and the interpolated scale, for each layer
        cells = math.ceil(DETECTOR_SIZE / ANCHOR_STRIDES[layer])
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
        layer = end
    return np.array(centres, np.float32)


def decode_detections(raw: np.ndarray, scores: np.ndarray, anchors: np.ndarray,
                      min_score: float = MIN_DETECTION_SCORE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One detector output (2254, 12) and its raw scores (2254,) -> the detections scoring at least
    ``min_score``: scores (K,), boxes (K, 4) as xmin, ymin, xmax, ymax, keypoints (K, 4, 2), all in
    the detector input's [0, 1] coordinates (x before y: the model's output order is reversed)."""
    clipped = np.clip(scores.astype(np.float64), -SCORE_CLIPPING, SCORE_CLIPPING)
    score = (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)
    keep = np.flatnonzero(score >= min_score)
    raw, centre = raw[keep].astype(np.float32), anchors[keep]
    xy = raw[:, :2] / DETECTOR_SIZE + centre
    size = raw[:, 2:4] / DETECTOR_SIZE
    boxes = np.concatenate([xy - size / 2, xy + size / 2], axis=1)
    keypoints = raw[:, 4:12].reshape(-1, 4, 2) / DETECTOR_SIZE + centre[:, None]
    return score[keep], boxes, keypoints


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (K, 4) boxes (xmin, ymin, xmax, ymax)."""
    lo, hi = np.maximum(box[:2], others[:, :2]), np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 threshold: float = SUPPRESSION_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression: from the best remaining detection, every detection
    overlapping it by more than ``threshold`` (itself included) is averaged into it, weighted by
    score; the best one's score is kept. Returns scores, boxes and keypoints, best first."""
    order = np.argsort(-scores, kind="stable")
    out_scores, out_boxes, out_keypoints = [], [], []
    while len(order):
        best = order[0]
        overlap = iou(boxes[best], boxes[order]) > threshold
        group = order[overlap]
        weights = scores[group][:, None]
        out_scores.append(scores[best])
        out_boxes.append((boxes[group] * weights).sum(0) / weights.sum())
        out_keypoints.append((keypoints[group] * weights[:, :, None]).sum(0) / weights.sum())
        order = order[~overlap]
    return (np.array(out_scores, np.float32), np.array(out_boxes, np.float32).reshape(-1, 4),
            np.array(out_keypoints, np.float32).reshape(-1, 4, 2))


def square_halves(width: int, height: int) -> np.ndarray:
    """The two squares (2, 5) at either end of a frame's long side (none for a square frame), as
    unrotated ROIs: the left and right H x H of a landscape frame, the top and bottom of a portrait one."""
    if width == height:
        return np.zeros((0, 5))
    if width > height:
        side = height / width
        return np.array([[side / 2, 0.5, side, 1.0, 0.0], [1 - side / 2, 0.5, side, 1.0, 0.0]])
    side = width / height
    return np.array([[0.5, side / 2, 1.0, side, 0.0], [0.5, 1 - side / 2, 1.0, side, 0.0]])


def from_crop(points: np.ndarray, affine: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Points (..., 2) in a ``size`` crop's [0, 1] -> the image's [0, 1], through the crop's map
    ``affine`` (2, 3) (:func:`crop_affines`): for the whole frame, MediaPipe's letterbox removal."""
    pixels = points * size @ affine[:, :2].T + affine[:, 2]
    return (pixels / np.array([width, height])).astype(np.float32)


def normalize_radians(angle: np.ndarray) -> np.ndarray:
    return angle - 2 * math.pi * np.floor((angle - (-math.pi)) / (2 * math.pi))


def alignment_rects(centre: np.ndarray, scale_point: np.ndarray, width: int, height: int,
                    scale: float = ROI_SCALE) -> np.ndarray:
    """ROIs (R, 5) of AlignmentPointsRectsCalculator then RectTransformationCalculator, from points
    (R, 2): each centred on ``centre``, twice as wide as the distance to ``scale_point``, rotated so
    that the direction from one to the other points up, square on its long side (pixels, already
    square here: square_long keeps it) and scaled by ``scale``."""
    centre, scale_point = np.asarray(centre, np.float64), np.asarray(scale_point, np.float64)
    x0, y0 = centre[:, 0] * width, centre[:, 1] * height
    dx, dy = scale_point[:, 0] * width - x0, scale_point[:, 1] * height - y0
    size = np.hypot(dx, dy) * 2.0
    rotation = normalize_radians(math.pi / 2 - np.arctan2(-dy, dx))
    return np.stack([x0 / width, y0 / height, size / width * scale, size / height * scale, rotation], axis=1)


def object_scales(centre: np.ndarray, scale_point: np.ndarray, width: int, height: int) -> np.ndarray:
    """The size in pixels (R,) of AlignmentPointsRectsCalculator's ROI alone (no margin): what the
    landmark smoothing measures speeds against (twice the points' distance)."""
    centre, scale_point = np.asarray(centre, np.float64), np.asarray(scale_point, np.float64)
    return np.hypot((scale_point[:, 0] - centre[:, 0]) * width, (scale_point[:, 1] - centre[:, 1]) * height) * 2.0


def crop_affines(rois: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """The 2x3 maps (R, 2, 3) from a ``size`` x ``size`` crop's pixel (u, v) to the image's pixel
    (x, y) that MediaPipe's OpenCV converter samples for each ROI (R, 5): the rotated rectangle's
    corners (cv::boxPoints) go to the crop's corners (0, 0) ... (size, size), and OpenCV puts pixel
    centres at whole coordinates. A rectangle that is not square is padded to one (keep_aspect_ratio)."""
    rois = np.asarray(rois, np.float64)
    cx, cy = rois[:, 0] * width, rois[:, 1] * height
    w, h = rois[:, 2] * width, rois[:, 3] * height
    if not ((w > 0) & (h > 0)).all():
        raise ValueError("a crop of an empty rectangle")
    w = h = np.maximum(w, h)
    b, a = np.cos(rois[:, 4]) * 0.5, np.sin(rois[:, 4]) * 0.5
    bottom_left = np.stack([cx - a * h - b * w, cy + b * h - a * w], axis=1)
    top_left = np.stack([cx + a * h - b * w, cy - b * h - a * w], axis=1)
    top_right = np.stack([2 * cx, 2 * cy], axis=1) - bottom_left
    return np.stack([(top_right - top_left) / size, (bottom_left - top_left) / size, top_left], axis=2)


def project(points: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """Landmarks (R, N, 2) in their ROI's crop [0, 1] -> the image's [0, 1], one ROI (R, 5) each, as
    LandmarkProjectionCalculator does without image dimensions (rotation in normalised units),
    in the points' precision (MediaPipe's is float)."""
    c, s = (f(rois[:, 4, None]).astype(points.dtype) for f in (np.cos, np.sin))
    centre_x, centre_y, width, height = (rois[:, k, None].astype(points.dtype) for k in range(4))
    x, y = points[..., 0] - 0.5, points[..., 1] - 0.5
    return np.stack([(c * x - s * y) * width + centre_x, (s * x + c * y) * height + centre_y], axis=-1)
