"""BlazePose in a process of its own: it reads the frames where they lie in the shared block and
poses each camera as BlazePose in this process does; an image outside the block, a process that
cannot start and one that dies are one line each, and the frames waiting for it are answered
without a person, with the reason, not left hanging."""

import os
import signal

import numpy as np
import pytest
from helpers import Answers, tracked_distance

from stgcn_rt.errors import StgcnError
from stgcn_rt.pipeline.decoders import shared_frames

pytest.importorskip("tflite")
pytest.importorskip("cv2")


def test_cameras_posed_in_the_process_get_what_blazepose_gives_them_here(clip_frames):
    clip_frames = clip_frames[:10]
    from stgcn_rt.pipeline.pose_process import PoseProcess
    from stgcn_rt.pipeline.pose_stage import blazepose

    alone = blazepose()
    expected = {name: [alone.process({name: image})[name] for image in order]
                for name, order in (("a", clip_frames), ("b", clip_frames[::-1]))}
    shared, frames = shared_frames((2, len(clip_frames), *clip_frames[0].shape))
    # b runs the clip backwards: were its frames mixed with a's, both tracks would move
    for row, order in enumerate((clip_frames, clip_frames[::-1])):
        frames[row] = np.stack(order)
    answers = Answers()
    with PoseProcess(answers, shared, frames, cameras=2) as process:
        assert process.pinned is False  # nothing to page-lock for on the CPU
        for row, name in enumerate("ab"):
            for slot in range(len(clip_frames)):
                process.submit(name, frames[row, slot], (name, slot))
        process.flush()
        results = {name: answers.wait([(name, slot) for slot in range(len(clip_frames))]) for name in "ab"}
        with pytest.raises(ValueError, match="^BlazePose's process reads frames in the decoders' shared block: "
                                             "this image is not one of its slots$"):
            process.submit("a", clip_frames[0], "outside")
    for name in "ab":
        assert all(r.error is None and r.found == 1 and r.milliseconds > 0 for r in results[name])
        assert tracked_distance([r.keypoints for r in results[name]], expected[name]) < 1e-3
    # the frames of a's and b's that waited together were posed together, and the answers say so
    assert {r.batch for name in "ab" for r in results[name]} <= {1, 2} and max(r.batch for r in results["b"]) == 2
    with pytest.raises(RuntimeError, match="closed"):
        process.submit("a", frames[0, 0], "late")


def test_a_process_that_cannot_start_is_its_reason_in_one_line(tmp_path, clip_frames):
    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    missing = tmp_path / "none"
    with pytest.raises(StgcnError, match=f"^pose models: {missing} is not a folder: write one with stgcn-rt "
                                         f"export-pose -o {missing}$"):
        PoseProcess(Answers(), shared, frames, models=str(missing))


def test_frames_waiting_for_a_process_that_died_are_answered_without_a_person_and_so_are_later_ones(clip_frames):
    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    frames[0, 0] = clip_frames[0]
    answers = Answers()
    process = PoseProcess(answers, shared, frames, persons=5)
    os.kill(process._process.pid, signal.SIGKILL)
    process.submit("a", frames[0, 0], "waiting")
    process.flush()
    [waiting] = answers.wait(["waiting"], timeout=60)
    process.submit("a", frames[0, 1], "later")
    assert answers.answered("later")  # at once
    [later] = answers.wait(["later"], timeout=0)
    for posed in (waiting, later):
        assert posed.error == f"BlazePose's process stopped (exit code -{int(signal.SIGKILL)})"
        assert posed.keypoints.shape == (5, 33, 3) and not posed.keypoints.any() and posed.found == 0
    assert process.close() == []
