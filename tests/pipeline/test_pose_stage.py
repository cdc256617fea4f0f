"""BlazePose as the pipeline's pose stage: every camera in one step, each camera's frames in order,
a failed step answered and survived, and `stgcn-rt run --pose blazepose` end to end (on the CPU)."""

import json

import numpy as np
import pytest
from helpers import Answers, cli_runner, tracked_distance

from stgcn_rt.cli import cli

pytest.importorskip("tflite")
pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def frames(clip_frames):
    return clip_frames[:12]


@pytest.mark.parametrize("lanes", [1, 2])
def test_cameras_posed_together_get_what_each_gets_alone(frames, lanes):
    """In one lane, or dealt to two (threads whose steps overlap, sharing the networks)."""
    from stgcn_rt.pipeline.pose_stage import BlazePoseStage, blazepose

    alone = blazepose()
    expected = [alone.process({"a": image})["a"] for image in frames]
    # b runs the clip backwards: were its frames mixed with a's or c's, their tracks would move
    answers = Answers()
    with BlazePoseStage(answers, cameras=3, lanes=lanes) as stage:
        dealt = stage._lanes._lanes
        assert len({id(lane.pose.networks) for lane in dealt}) == 1 and len(dealt) == lanes
        for name, images in (("a", frames), ("b", frames[::-1]), ("c", frames)):
            for k, image in enumerate(images):
                stage.submit(name, image, (name, k))
        results = {name: answers.wait([(name, k) for k in range(len(frames))]) for name in "abc"}
    # every step holds at most one frame of a camera, each camera's in order
    for name in "abc":
        order = [job[1] for jobs, _ in answers.steps for job in jobs if job[0] == name]
        assert order == list(range(len(frames)))
    assert all(len({job[0] for job in jobs}) == len(jobs) for jobs, _ in answers.steps)
    for name in ("a", "c"):
        assert all(r.error is None and r.found == 1 and r.milliseconds > 0 and r.keypoints.shape == (1, 33, 3)
                   for r in results[name])
        assert tracked_distance([r.keypoints for r in results[name]], expected) < 1e-3
    # a and c, the same frames in the same steps, get the same keypoints
    np.testing.assert_array_equal([r.keypoints for r in results["a"]], [r.keypoints for r in results["c"]])


@pytest.mark.parametrize("graphs", [None, True, False])
def test_the_stage_asks_for_cuda_graphs_as_told_and_they_never_apply_on_the_cpu(monkeypatch, graphs):
    from stgcn_rt.pipeline import pose_stage

    asked, original = [], pose_stage.blazepose

    def recording(*args):
        asked.append(args[-1])
        return original(*args)

    monkeypatch.setattr(pose_stage, "blazepose", recording)
    with pose_stage.BlazePoseStage(Answers(), graphs=graphs) as stage:
        assert asked == [graphs] and stage.pose.networks.graphs is False


def test_a_failed_step_is_answered_and_the_cameras_go_on(frames):
    """The frames of a step that raised are answered without a person, with the error's first line."""
    from stgcn_rt.pipeline.pose_stage import BlazePoseStage

    answers = Answers()
    with BlazePoseStage(answers) as stage:
        process, calls = stage.pose.process_persons, []

        def failing_once(images, bgr=True):
            calls.append(sorted(images))
            if len(calls) == 1:
                raise RuntimeError("device lost\nCUDA kernel errors might be asynchronously reported")
            return process(images, bgr)

        stage.pose.process_persons = failing_once
        stage.submit("a", frames[0], 0)
        stage.submit("a", frames[1], 1)
        first, second = answers.wait([0, 1])
    assert first.error == "RuntimeError: device lost" and first.found == 0 and not first.keypoints.any()
    assert second.error is None and second.found == 1


def held_steps(pose):
    """``pose``'s steps held until the gate (returned with the event set when a step enters) opens."""
    import threading

    process, entered, gate = pose.process_persons, threading.Event(), threading.Event()

    def held(images, bgr=True):
        entered.set()
        gate.wait(60)
        return process(images, bgr)

    pose.process_persons = held
    return entered, gate


def test_each_answer_says_how_many_frames_its_step_posed(frames):
    """A step takes the oldest waiting frame of every camera: the first step here takes a's first frame
    alone, the next every camera's frame that waited meanwhile."""

    from stgcn_rt.pipeline.pose_stage import BlazePoseStage

    answers = Answers()
    with BlazePoseStage(answers, cameras=3) as stage:
        entered, gate = held_steps(stage.pose)
        stage.submit("a", frames[0], "a0")
        assert entered.wait(60)
        for name in "abc":
            stage.submit(name, frames[1], f"{name}1")
        gate.set()
        assert [r.batch for r in answers.wait(["a0", "a1", "b1", "c1"])] == [1, 3, 3, 3]


def test_lanes_answer_a_step_once_for_all_its_frames_and_closing_gives_back_the_jobs_left(frames):
    """Each step comes back as one answer, its jobs in the order of its keypoints; closing finishes
    the step under way and gives back the jobs still waiting."""
    import threading
    import time

    from stgcn_rt.pipeline.pose_stage import BlazePoseLanes

    answers = []
    lanes = BlazePoseLanes(lambda jobs, step: answers.append((jobs, step)), cameras=2)
    entered, gate = held_steps(lanes.pose)
    lanes.post([("a", frames[0], "a0"), ("b", frames[0][:, ::-1].copy(), "b0"), ("a", frames[1], "a1")])
    assert entered.wait(60)
    dropped = []
    closing = threading.Thread(target=lambda: dropped.extend(lanes.close()))
    closing.start()
    while not lanes._lanes[0]._closed:
        time.sleep(0.01)
    gate.set()
    closing.join(120)
    assert dropped == ["a1"] and len(answers) == 1
    jobs, step = answers[0]
    assert jobs == ["a0", "b0"] and step.error is None and step.keypoints.shape == (2, 1, 33, 3)
    assert step.found.tolist() == [1, 1] and step.milliseconds > 0


def test_closing_drops_the_frames_not_yet_posed_and_never_answers_them(frames):
    from stgcn_rt.pipeline.pose_stage import BlazePoseStage

    answers = Answers()
    stage = BlazePoseStage(answers)
    for k, image in enumerate(frames):
        stage.submit("a", image, k)
    dropped = stage.close()
    answered = [k for k in range(len(frames)) if answers.answered(k)]
    assert dropped and sorted(answered + dropped) == list(range(len(frames)))
    with pytest.raises(RuntimeError, match="closed"):
        stage.submit("a", frames[0], 0)


@pytest.mark.parametrize("networks", ["pytorch", "exported", "process"])
def test_run_with_blazepose(tmp_path, short_clip, demo_models, request, networks):
    """Through PyTorch's networks, the exported ones in ONNX Runtime (--pose-models), or PyTorch's in
    a process of its own (--pose-process)."""
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    folder = str(request.getfixturevalue("pose_onnx")[0].path.parent) if networks == "exported" else None
    process = networks == "process"
    result = cli_runner().invoke(cli, ["run", "--source", str(short_clip), "--model", str(onnx_path), "--pose",
                                      "blazepose", "--stride", "10", "--min-frames", "10", "--events", str(events),
                                      *(["--pose-models", folder] if folder else []),
                                      *(["--pose-process"] if process else [])])
    assert result.exit_code == 0, result.stderr
    run, *rest = [json.loads(line) for line in events.read_text().splitlines()]
    networks_line = f"from {folder}" if folder else "fp32"
    where = " in a process of its own" if process else ""
    assert f"pose: BlazePose {networks_line} on cpu{where}, warming up its networks" in result.stderr
    assert f"pose: ready after {run['pose_ready_s']:g} s" in result.stderr and run["pose_ready_s"] > 0
    assert (run["pose"], run["pose_precision"], run["pose_models"], run["pose_process"], run["pose_compiled"]) == (
        "blazepose", None if folder else "fp32", folder, process, False)  # nothing compiles on the CPU
    predictions = [e for e in rest if e["kind"] == "prediction"]
    assert [p["frames"][1] for p in predictions] == [9, 19, 29, 39] and all(p["persons"] == [0] for p in predictions)
    assert not [e for e in rest if e["kind"] == "error"]


def test_blazepose_fills_several_slots_in_the_pipeline_without_doubling_a_person(tmp_path, short_clip, demo_models):
    """M=5 with blazepose through run on a one-person clip: the person in slot 0, never in a second."""
    ckpt, _ = demo_models
    events = tmp_path / "e.jsonl"
    result = cli_runner().invoke(cli, ["run", "--source", str(short_clip), "--model", str(ckpt), "--pose",
                                      "blazepose", "--persons", "5", "--stride", "10", "--min-frames", "10",
                                      "--events", str(events)])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines[0]["persons"] == 5 and lines[0]["pose"] == "blazepose"
    predictions = [e for e in lines if e["kind"] == "prediction"]
    assert len(predictions) == 4 and all(p["persons"] == [0] for p in predictions)


@pytest.mark.parametrize(("args", "message"), [
    (["--pose", "mediapipe", "--pose-precision", "fp16"],
     "--pose-precision is blazepose's: MediaPipe's solution runs in its own precision on the CPU; leave "
     "--pose-precision out or use --pose blazepose"),
    (["--pose", "mediapipe", "--pose-models", "m"],
     "--pose-models is blazepose's: MediaPipe's solution runs its own networks; leave --pose-models out or use "
     "--pose blazepose"),
    (["--pose", "blazepose", "--pose-models", "m", "--pose-precision", "fp32"],
     "the networks in --pose-models run in their files' precision (build an fp16 engine with stgcn-rt build "
     "--precision fp16): leave the pose precision out"),
])
def test_pose_options_a_backend_cannot_take_are_one_line(tmp_path, short_clip, demo_models, args, message):
    _, onnx_path = demo_models
    result = cli_runner().invoke(cli, ["run", "--source", str(short_clip), "--model", str(onnx_path), *args,
                                      "--events", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert not (tmp_path / "e.jsonl").exists()


def test_a_step_counts_each_frames_persons_once_and_keeps_them_through_pickling():
    """The persons found a frame are counted for a whole step in the process that posed it."""
    import pickle

    from stgcn_rt.pipeline.posed import PosedStep

    keypoints = np.zeros((3, 2, 33, 3), np.float32)
    keypoints[1, 0, 5] = 0.5
    keypoints[2, :, 7] = 0.5
    step = pickle.loads(pickle.dumps(PosedStep(keypoints, 4.0)))
    assert step.found.tolist() == [0, 1, 2] and step.milliseconds == 4.0
    assert len(PosedStep(np.zeros((0, 1, 33, 3), np.float32), 1.0).found) == 0  # an empty step counts too
    failed = PosedStep.failed(2, 5, "RuntimeError: device lost", 3.0)
    assert failed.keypoints.shape == (2, 5, 33, 3) and not failed.keypoints.any() and failed.found.tolist() == [0, 0]
    assert (failed.error, failed.milliseconds) == ("RuntimeError: device lost", 3.0)
