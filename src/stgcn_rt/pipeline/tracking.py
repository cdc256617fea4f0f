"""Keep each person in a stable slot 0..M-1 across frames: Hungarian matching on box IoU.

A track keeps its slot while it is matched; after ``timeout`` frames without a match its slot is
freed. A box that overlaps no track but lies near a track that lost its person (who moved while
unseen for a few frames) is that person again, so one person does not come back in a second slot.
New people take the lowest free slot, larger boxes first, so slot order is deterministic.
When more people are visible than there are slots, the largest unmatched boxes win.

Boxes alone cannot tell one person from two: a detector's loose box around someone whose pose gives a
tight box overlaps it little. :func:`same_person` compares the poses themselves.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _centre_distance(a: Box, b: Box) -> float:
    """Centre-to-centre distance in units of the larger box's diagonal."""
    diagonal = max(np.hypot(a.x2 - a.x1, a.y2 - a.y1), np.hypot(b.x2 - b.x1, b.y2 - b.y1), 1e-6)
    return float(np.hypot((a.x1 + a.x2 - b.x1 - b.x2) / 2, (a.y1 + a.y2 - b.y1 - b.y2) / 2) / diagonal)


@dataclass
class Track:
    slot: int
    box: Box
    missed: int = 0


class SlotTracker:
    def __init__(self, slots: int = 5, min_iou: float = 0.2, timeout: int = 25, reacquire: float = 1.0) -> None:
        """``reacquire``: how far (centre to centre, in the larger box's diagonals) a lost track's person
        may have moved and still be taken for the same person."""
        self.slots = slots
        self.min_iou = min_iou
        self.timeout = timeout
        self.reacquire = reacquire
        self.tracks: list[Track] = []

    def update(self, boxes: list[Box]) -> dict[int, Box]:
        """Match this frame's boxes; returns {slot: box} for the people seen in this frame."""
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        self._match(boxes, lambda t, b: 1.0 - iou(t.box, b), 1.0 - self.min_iou, matched_tracks, matched_boxes,
                    lost_only=False)
        self._match(boxes, lambda t, b: _centre_distance(t.box, b), self.reacquire, matched_tracks, matched_boxes,
                    lost_only=True)
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

    def _match(self, boxes: list[Box], cost: Callable[[Track, Box], float], limit: float, matched_tracks: set[int],
               matched_boxes: set[int], lost_only: bool) -> None:
        """Hungarian matching of the boxes and tracks not matched yet, pairs of ``cost`` <= ``limit``
        (``lost_only``: tracks that missed their person in an earlier frame)."""
        tracks = [ti for ti, t in enumerate(self.tracks)
                  if ti not in matched_tracks and (t.missed > 0 or not lost_only)]
        free = [bi for bi in range(len(boxes)) if bi not in matched_boxes]
        if not tracks or not free:
            return
        costs = np.array([[cost(self.tracks[ti], boxes[bi]) for bi in free] for ti in tracks])
        for row, column in zip(*linear_sum_assignment(costs)):
            if costs[row, column] <= limit:
                ti, bi = tracks[row], free[column]
                self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
                matched_tracks.add(ti)
                matched_boxes.add(bi)

    def forget(self, slot: int) -> None:
        """Free ``slot`` now (its box turned out to be a person another slot already holds)."""
        self.tracks = [t for t in self.tracks if t.slot != slot]
