"""Keep each person in a stable slot 0..M-1 across frames: Hungarian matching on box IoU.

A track keeps its slot while it is matched; after ``timeout`` frames without a match its slot is
freed. New people take the lowest free slot, larger boxes first, so slot order is deterministic.
When more people are visible than there are slots, the largest unmatched boxes win.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from stgcn_rt.pipeline.detect import Box, iou


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
