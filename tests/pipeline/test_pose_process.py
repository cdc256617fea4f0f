"""BlazePose in a process of its own, fed the frames' places as the decoders feed them: it reads
them where they lie in the shared block and poses each camera as BlazePose in this process does;
a process that cannot start and one that dies are one line each."""

import os
import signal

import numpy as np
import pytest
from helpers import Answers, tracked_distance

from stgcn_rt.errors import StgcnError
from stgcn_rt.pipeline.decoders import shared_frames

pytest.importorskip("tflite")
pytest.importorskip("cv2")


def fed_queue():
    """A queue as the decoders feed BlazePose's process."""
    import multiprocessing

    return multiprocessing.get_context("spawn").Queue()


def test_cameras_fed_to_the_process_get_what_blazepose_gives_them_here(clip_frames):
    clip_frames = clip_frames[:10]
    from stgcn_rt.pipeline.pose_process import PoseProcess
    from stgcn_rt.pipeline.pose_stage import blazepose

    alone = blazepose()
    expected = {row: [alone.process({row: image})[row] for image in order]
                for row, order in enumerate((clip_frames, clip_frames[::-1]))}
    shared, frames = shared_frames((2, len(clip_frames), *clip_frames[0].shape))
    # camera 1 runs the clip backwards: were its frames mixed with camera 0's, both tracks would move
    for row, order in enumerate((clip_frames, clip_frames[::-1])):
        frames[row] = np.stack(order)
    answers, feed = Answers(), fed_queue()
    fed = {row: [(row, slot, 100 + slot, 0.5 * slot) for slot in range(len(clip_frames))] for row in range(2)}
    with PoseProcess(answers, shared, frames, feed, cameras=2) as process:
        assert process.pinned is False  # nothing to page-lock for on the CPU
        feed.put(fed[0][:4] + fed[1][:4])  # as two decoders' rounds would: in order per camera
        feed.put(fed[1][4:] + fed[0][4:])
        results = {row: answers.wait(fed[row]) for row in range(2)}
        assert process.failure is None
    for row in range(2):
        assert all(r.error is None and r.found == 1 and r.milliseconds > 0 for r in results[row])
        assert tracked_distance([r.keypoints for r in results[row]], expected[row]) < 1e-3
    # each step answers the frames as fed, one a camera, each camera's in order
    assert all(len({job[0] for job in jobs}) == len(jobs) for jobs, _ in answers.steps)
    for row in range(2):
        assert [job for jobs, _ in answers.steps for job in jobs if job[0] == row] == fed[row]
    # the frames of both cameras that waited together were posed together, and the answers say so
    assert max(r.batch for r in results[1]) == 2


def test_a_process_that_cannot_start_is_its_reason_in_one_line(tmp_path, clip_frames):
    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    missing = tmp_path / "none"
    with pytest.raises(StgcnError, match=f"^pose models: {missing} is not a folder: write one with stgcn-rt "
                                         f"export-pose -o {missing}$"):
        PoseProcess(Answers(), shared, frames, fed_queue(), models=str(missing))


def test_a_process_that_died_says_so(clip_frames):
    import time

    from stgcn_rt.pipeline.pose_process import PoseProcess

    shared, frames = shared_frames((1, 2, *clip_frames[0].shape))
    process = PoseProcess(Answers(), shared, frames, fed_queue())
    assert process.failure is None
    os.kill(process._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while process.failure is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.failure == f"BlazePose's process stopped (exit code -{int(signal.SIGKILL)})"
    process.close()


def test_a_run_whose_pose_process_dies_ends_with_one_line_and_keeps_its_events(tmp_path, short_clip, monkeypatch):
    """The decoders feed the process directly, so its frames are lost with it: the run ends, saying why."""
    import io
    import json

    from helpers import MeanClassifier

    from stgcn_rt.pipeline.runner import Pipeline, PipelineConfig

    events = tmp_path / "events.jsonl"
    config = PipelineConfig([str(short_clip)], events, pose="blazepose", pose_process=True, stride=10, min_frames=10)
    pipeline = Pipeline(config, MeanClassifier(shape=(None, 3, 150, 33, 1)), status=io.StringIO())
    start = pipeline._pose_stage

    def killed(decoders):
        stage = start(decoders)
        os.kill(stage._process.pid, signal.SIGKILL)
        return stage

    monkeypatch.setattr(pipeline, "_pose_stage", killed)
    with pytest.raises(StgcnError) as raised:
        pipeline.run()
    assert str(raised.value) == (
        f"BlazePose's process stopped (exit code -{int(signal.SIGKILL)}): no camera's frames can be posed, so the run "
        f"ends (its events so far are in {events}); start it again, and if it stops again the system's log says why "
        "(out of memory?)")
    assert json.loads(events.read_text().splitlines()[0])["kind"] == "run"
