"""Keep each person in a stable slot 0..M-1 across frames: Hungarian matching on box IoU.

A track keeps its slot while it is matched; after ``timeout`` frames without a match its slot is
freed. New people take the lowest free slot, larger boxes first, so slot order is deterministic.
When more people are visible than there are slots, the largest unmatched boxes win.

Boxes alone cannot tell one person from two: a detector's loose box around someone whose pose gives a
tight box overlaps it little. :func:`same_person` compares the poses themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from stgcn_rt.pipeline.detect import Box, iou

#: the object keypoint similarity from which two poses are one person (1: the same points)
SAME_PERSON = 0.5
#: OKS's per-landmark falloff, as a fraction of the person's size; wider than COCO's body joints
#: (0.07-0.11), as two MediaPipe runs on one person (whole frame and a crop) differ by a few pixels
KEYPOINT_FALLOFF = 0.15
VISIBLE = 0.5


def pose_similarity(a: np.ndarray, b: np.ndarray, width: int, height: int) -> float:
    """Object keypoint similarity of two (33, 3) poses (x, y in [0, 1], visibility) in a
    ``width`` x ``height`` frame: the mean over landmarks visible in both (all, where fewer than
    three are) of exp(-d^2 / (2 s^2 k^2)), d the distance in pixels, s^2 the area of the box around both poses."""
    both = (a[:, 2] > VISIBLE) & (b[:, 2] > VISIBLE)
    if both.sum() < 3:
        both[:] = True
    scale = np.array([width, height], np.float32)
    pa, pb = a[both, :2] * scale, b[both, :2] * scale
    corners = np.concatenate([pa, pb])
    area = max(float(np.prod(corners.max(0) - corners.min(0))), 1.0)
    distance2 = ((pa - pb) ** 2).sum(axis=1)
    return float(np.exp(-distance2 / (2 * area * KEYPOINT_FALLOFF ** 2)).mean())


def same_person(a: np.ndarray, b: np.ndarray, width: int, height: int) -> bool:
    return pose_similarity(a, b, width, height) >= SAME_PERSON


@dataclass
class Track:
    slot: int
    box: Box
    missed: int = 0


class SlotTracker:
    def __init__(self, slots: int = 5, min_iou: float = 0.2, timeout: int = 25) -> None:
        self.slots = slots
        self.min_iou = min_iou
        self.timeout = timeout
        self.tracks: list[Track] = []

    def update(self, boxes: list[Box]) -> dict[int, Box]:
        """Match this frame's boxes; returns {slot: box} for the people seen in this frame."""
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        if self.tracks and boxes:
            cost = np.array([[1.0 - iou(t.box, b) for b in boxes] for t in self.tracks])
            for ti, bi in zip(*linear_sum_assignment(cost)):
                if 1.0 - cost[ti, bi] >= self.min_iou:
                    self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
                    matched_tracks.add(ti)
                    matched_boxes.add(bi)
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.timeout]
        used = {t.slot for t in self.tracks}
        free = [s for s in range(self.slots) if s not in used]
        newcomers = sorted((b for i, b in enumerate(boxes) if i not in matched_boxes), key=lambda b: -b.area)
        for slot, box in zip(free, newcomers):
            self.tracks.append(Track(slot, box))
            matched_tracks.add(len(self.tracks) - 1)
        return {t.slot: t.box for t in self.tracks if t.missed == 0}

    def forget(self, slot: int) -> None:
        """Free ``slot`` now (its box turned out to be a person another slot already holds)."""
        self.tracks = [t for t in self.tracks if t.slot != slot]
