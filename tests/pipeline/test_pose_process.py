"""BlazePose in a process of its own: it reads the frames where they lie in the shared block and
poses each camera as BlazePose in this process does; an image outside the block, a process that
cannot start and one that dies are one line each, and the frames waiting for it fail, not hang."""

import os
import signal

import numpy as np
import pytest
from helpers import tracked_distance

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
    with PoseProcess(shared, frames, cameras=2) as process:
        assert process.pinned is False  # nothing to page-lock for on the CPU
        futures = {name: [process.submit(name, frames[row, slot]) for slot in range(len(clip_frames))]
                   for row, name in enumerate("ab")}
        process.flush()
        results = {name: [f.result(timeout=120) for f in fs] for name, fs in futures.items()}
        with pytest.raises(ValueError, match="^BlazePose's process reads frames in the decoders' shared block: "
                                             "this image is not one of its slots$"):
            process.submit("a", clip_frames[0])
    for name in "ab":
        assert all(r.error is None and r.found == 1 and r.milliseconds > 0 for r in results[name])
        assert tracked_distance(results[name], expected[name]) < 1e-3
    # the frames of a's and b's that waited together were posed together, and the answers say so
    assert {r.batch for name in "ab" for r in results[name]} <= {1, 2} and max(r.batch for r in results["b"]) == 2
    with pytest.raises(RuntimeError, match="closed"):
        process.submit("a", frames[0, 0])


def test_a_process_that_cannot_start_is_its_reason_in_one_line(tmp_path, clip_frames):
    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    missing = tmp_path / "none"
    with pytest.raises(StgcnError, match=f"^pose models: {missing} is not a folder: write one with stgcn-rt "
                                         f"export-pose -o {missing}$"):
        PoseProcess(shared, frames, models=str(missing))


def test_frames_waiting_for_a_process_that_died_fail_and_so_do_later_ones(clip_frames):
    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    frames[0, 0] = clip_frames[0]
    process = PoseProcess(shared, frames)
    os.kill(process._process.pid, signal.SIGKILL)
    waiting = process.submit("a", frames[0, 0])
    process.flush()
    message = f"^BlazePose's process stopped \\(exit code -{int(signal.SIGKILL)}\\)$"
    with pytest.raises(RuntimeError, match=message):
        waiting.result(timeout=60)
    with pytest.raises(RuntimeError, match=message):
        process.submit("a", frames[0, 1]).result(timeout=0)
    process.close()
