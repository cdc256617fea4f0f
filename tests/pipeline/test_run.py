"""`stgcn-rt run` on real videos: windows per camera, valid JSON Lines, faults, Ctrl-C."""

import io
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from helpers import MeanClassifier, cli_runner  # noqa: E402

from stgcn_rt.cli import cli  # noqa: E402

FIELDS = {"kind", "run", "time", "camera", "frames", "persons", "class", "probabilities", "latency_ms", "queue_ms",
          "frame_to_pose_ms", "frame_to_event_ms", "batch"}
RUN_FIELDS = {"kind", "run", "time", "stgcn_rt", "model", "model_sha256", "backend", "device", "precision", "classes",
              "untrained", "pose", "pose_precision", "pose_models", "pose_process", "pose_compiled", "pose_ready_s",
              "persons", "stride", "min_frames", "threshold", "min_windows", "alert_class", "cameras", "command"}


def read_events(path, kind=None):
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if kind is None or e["kind"] == kind]


def test_two_videos_at_once(tmp_path, videos, demo_models):
    """Two cameras, full windows only (the first at frame 150), a run line first, the demo's untrained
    model said so on every line, H.264 video."""
    import hashlib

    cv2 = pytest.importorskip("cv2")
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]),
                                      "--source", str(videos["skateboarding"]), "--model", str(onnx_path),
                                      "--stride", "10", "--events", str(events),
                                      "--save-video", str(tmp_path / "video")])
    assert result.exit_code == 0, result.stderr
    run, *rest = read_events(events)
    assert run["kind"] == "run" and set(run) == RUN_FIELDS | {"untrained"}
    assert run["model"] == str(onnx_path) and run["model_sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert run["untrained"] is True and run["classes"] == ["normal", "shoplifting"] and run["persons"] == 1
    assert (run["pose"], run["pose_precision"], run["pose_process"], run["pose_compiled"]) == (
        "mediapipe", None, None, None)  # the CPU's default
    assert (run["stride"], run["min_frames"], run["alert_class"]) == (10, 150, "shoplifting")
    assert run["cameras"] == {"clean_and_jerk": str(videos["clean_and_jerk"]),
                              "skateboarding": str(videos["skateboarding"])}
    assert all(e["run"] == run["run"] and e["untrained"] is True for e in rest)
    predictions = [e for e in rest if e["kind"] == "prediction"]
    per_camera = {}
    for event in predictions:
        assert set(event) == FIELDS | {"untrained"}
        assert set(event["probabilities"]) == {"normal", "shoplifting"}
        assert abs(sum(event["probabilities"].values()) - 1) < 1e-4
        first, last = event["frames"]
        assert last - first + 1 == 150 and (last + 1) % 10 == 0  # no window of padding
        assert 0 <= event["queue_ms"] <= event["latency_ms"] <= event["frame_to_event_ms"]
        assert 0 < event["frame_to_pose_ms"] <= event["frame_to_event_ms"] - event["latency_ms"]
        per_camera.setdefault(event["camera"], []).append(last)
    assert {k: len(v) for k, v in per_camera.items()} == {"clean_and_jerk": 16, "skateboarding": 16}
    assert per_camera["clean_and_jerk"] == sorted(per_camera["clean_and_jerk"])
    table = result.stdout.splitlines()
    assert table[0].split() == ["camera", "frames", "person", "windows", "predictions", "alerts", "dropped",
                                "pose", "ms", "queue", "ms", "model", "ms"]
    assert table[1].split()[:6] == ["clean_and_jerk", "300", "100%", "16", "16", "0"]
    assert f"events: {events} (run {run['run']}: 1 run line, 32 predictions)" in result.stdout
    video = tmp_path / "video" / "clean_and_jerk.mp4"
    capture = cv2.VideoCapture(str(video))
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
    assert codec in ("h264", "avc1") and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 300
    assert not list((tmp_path / "video").glob(".*"))  # no partial files left


def test_a_broken_source_does_not_stop_the_others(tmp_path, videos, demo_models):
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    cut = tmp_path / "broken.mp4"
    data = videos["skateboarding"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    result = cli_runner().invoke(cli, ["run", "--source", str(tmp_path / "missing.mp4"), "--source", str(cut),
                                      "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--stride", "25", "--events", str(events)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("camera missing: cannot open") == 1
    failed = [e for e in read_events(events, "camera") if e["camera"] == "missing"]
    assert [(e["state"], e["message"]) for e in failed] == [("failed", f"cannot open {tmp_path / 'missing.mp4'}: "
                                                                        "no such file")]
    predictions = read_events(events, "prediction")
    assert {e["camera"] for e in predictions} == {"clean_and_jerk"} and len(predictions) == 7


def test_no_usable_source_is_an_error(tmp_path, demo_models):
    _, onnx_path = demo_models
    result = cli_runner().invoke(cli, ["run", "--source", str(tmp_path / "nope.mp4"), "--model", str(onnx_path),
                                      "--events", str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2, result.stderr
    missing = tmp_path / "nope.mp4"
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: no source delivered a frame: cannot open {missing}: no such file"
    assert "the other cameras continue" not in result.stderr  # there are none


def test_ctrl_c_stops_cleanly_and_keeps_every_event(tmp_path, videos, demo_models):
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    # a window a second, which two cores classify in real time beside pose (a window every 5 frames
    # builds a backlog there, and the clip could end before the events the test waits for). The
    # child gets Ctrl-C's default disposition, as from a terminal: a test runner started in the
    # background passes SIGINT down ignored, and Python then never turns it into KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "stgcn_rt.cli", "run", "--source", str(videos["clean_and_jerk"]),
                             "--model", str(onnx_path), "--stride", "25", "--min-frames", "25", "--realtime",
                             "--events", str(events)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and (not events.exists() or len(events.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    kinds = [e["kind"] for e in read_events(events)]
    assert kinds[0] == "run" and len(kinds) >= 3 and set(kinds[1:]) == {"prediction"}
    assert len(kinds) - 1 < 12  # it really stopped early: the whole clip gives 12 windows at this stride


def test_multi_person_windows_on_a_real_video(tmp_path, videos):
    """M=5: detector + slot tracker + per-person pose; the main person stays in one slot, and on a
    one-person clip no window holds two persons (a detector's box around them once made a second)."""

    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
    from stgcn_rt.pipeline.pose_pool import CameraPose

    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(str(videos["clean_and_jerk"]))
    pose = CameraPose(persons=5, detector="hog")
    main_slots, found = [], 0
    for _ in range(120):
        ok, image = capture.read()
        assert ok
        keypoints, boxes = pose(cv2.resize(image, (640, 480)))
        assert keypoints.shape == (5, 33, 3) and keypoints.min() >= 0 and keypoints.max() <= 1
        if boxes:
            found += 1
            main_slots.append(max(boxes, key=lambda s: boxes[s].area))
    switches = sum(a != b for a, b in zip(main_slots, main_slots[1:]))
    print(f"M=5 on clean_and_jerk: someone in {found}/120 frames, main-person slot switches {switches}")
    assert found >= 100 and switches <= 3

    onnx_path, _ = export_onnx(load_checkpoint(make_demo_checkpoint(tmp_path / "d.pt")), tmp_path / "m5.onnx",
                               ExportOptions(persons=5), validate=False)
    events = tmp_path / "events.jsonl"
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["skateboarding"]), "--model", str(onnx_path),
                                      "--stride", "25", "--events", str(events)])  # --persons: the model's 5
    assert result.exit_code == 0, result.stderr
    assert read_events(events, "run")[0]["persons"] == 5
    predictions = read_events(events, "prediction")
    assert len(predictions) == 7 and all(set(e) == FIELDS | {"untrained"} for e in predictions)
    assert [len(e["persons"]) for e in predictions] == [1] * 7
    assert np.isclose(sum(predictions[0]["probabilities"].values()), 1, atol=1e-4)


def test_alerts_with_hysteresis_and_a_clip_each(tmp_path, videos, demo_models):
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    # threshold 0 makes every window count towards an alert: raised once, after 2 windows, never cleared
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--stride", "30", "--events", str(events), "--threshold", "0",
                                      "--min-windows", "2", "--save-clips", str(tmp_path / "clips")])
    assert result.exit_code == 0, result.stderr
    lines = read_events(events)
    alerts = [e for e in lines if e["kind"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["state"] == "raised" and alerts[0]["class"] == "shoplifting"
    assert [e["kind"] for e in lines[:4]] == ["run", "prediction", "prediction", "alert"]  # after the second
    clip = tmp_path / "clips" / "clean_and_jerk-000179.mp4"
    assert alerts[0]["clip"] == str(clip) and clip.stat().st_size > 10_000
    assert "alert clips:" in result.stdout


def test_display_without_a_screen_is_one_line(tmp_path, videos, demo_models, monkeypatch):
    _, onnx_path = demo_models
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--events", str(tmp_path / "e.jsonl"), "--display"])
    assert result.exit_code == 2 and result.stderr.strip().endswith("use --save-video DIR instead")


def test_pipeline_with_a_model_served_by_triton(tmp_path, videos, demo_models):
    pytest.importorskip("tritonclient.http")
    from helpers import V2Server

    from stgcn_rt.runtime import load_classifier

    _, onnx_path = demo_models
    with load_classifier(onnx_path) as local:
        server = V2Server(local)
        try:
            events = tmp_path / "events.jsonl"
            result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model",
                                              f"http://127.0.0.1:{server.port}/stgcn", "--stride", "50",
                                              "--events", str(events)])
        finally:
            server.stop()
    assert result.exit_code == 0, result.stderr
    assert "classifier Triton on triton http://127.0.0.1" in result.stderr
    run, *predictions = read_events(events)
    assert run["model"] == f"http://127.0.0.1:{server.port}/stgcn" and run["model_sha256"] is None
    assert run["untrained"] is True and all(e["untrained"] for e in predictions)  # told by the server's config
    assert len(predictions) == 4 and server.requests >= 1


def test_status_line_says_what_each_camera_is_doing():
    from stgcn_rt.pipeline.runner import CameraState, Timings
    from stgcn_rt.pipeline.sources import FrameReader, SourceSpec
    from stgcn_rt.runtime.predict import SkeletonWindow

    def camera(frames_done=0, **counters):
        spec = SourceSpec("rtsp://u:p@10.0.0.9/live", "door")
        state = CameraState(spec, FrameReader(spec), SkeletonWindow(150, 5), frames_done=frames_done,
                            pose_ms=Timings([20.0, 40.0]), queue_ms=Timings([2900.0]), model_ms=Timings([130.0]))
        for key, value in counters.items():
            setattr(state.reader.counters, key, value)
        return state

    assert camera(reconnects=2).status(10.0) == "door: connecting (retry 2)"
    assert camera(reconnects=5, error="cannot open rtsp://u:***@10.0.0.9/live").status(10.0) == "door: failed"
    assert camera(250, read=250, finished=True).status(10.0) == "door: done, 250 frames"
    assert camera(250, read=260, dropped=4, reconnects=1).status(10.0) == \
        "door: 25.0 fps, pose 30 ms, queue 2,900 ms, model 130 ms, drops 4"


def test_a_failed_start_names_the_fix_and_leaves_nothing(tmp_path, videos, demo_models):
    """--persons that the model cannot take: one line naming what to do, and no events file or video
    folder left behind; an --events folder that does not exist is named with its option."""
    _, onnx_path = demo_models
    events, video = tmp_path / "e.jsonl", tmp_path / "video"
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--persons", "5", "--events", str(events), "--save-video", str(video)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the model takes M=1 persons per window but --persons is 5: leave --persons out (the model's M), "
        "export one for 5 (stgcn-rt export CKPT --persons 5) or give the .pt checkpoint, which takes any M")
    assert not events.exists() and not video.exists()
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--events", str(tmp_path / "logs" / "e.jsonl")])
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"error: output directory {tmp_path / 'logs'} does not exist: create it (mkdir -p {tmp_path / 'logs'}) "
        "or choose another --events")
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--min-frames", "151", "--events", str(events)])
    assert result.exit_code == 2 and "--min-frames must be 1 to the model's window of 150 frames" in result.stderr
    assert not events.exists()


class Overflowing(MeanClassifier):
    """A model whose fp16 activations overflow: NaN logits for every window."""

    precision = "fp16"

    def __init__(self):
        super().__init__(shape=(None, 3, 150, 33, 1))

    def _logits(self, windows):
        return np.full((len(windows), 2), np.nan, np.float32)


def test_a_model_that_gives_nan_is_an_error_event_never_a_prediction(tmp_path, short_clip):
    from stgcn_rt.pipeline.runner import Pipeline, PipelineConfig

    events = tmp_path / "events.jsonl"
    status = io.StringIO()
    config = PipelineConfig([str(short_clip)], events, stride=10, min_frames=10, pose_workers=1)
    summaries = Pipeline(config, Overflowing(), status=status).run()
    kinds = [e["kind"] for e in read_events(events)]
    assert kinds == ["run", "error"]  # four windows failed, told once
    (error,) = read_events(events, "error")
    assert error["camera"] == "short" and error["stage"] == "classify"
    assert error["message"].startswith("classification failed: mean (fp16) gave NaN or infinite outputs")
    assert "run it in fp32 instead" in error["message"] and status.getvalue().count("classification failed") == 1
    assert summaries[0].windows == 4 and summaries[0].predictions == 0 and summaries[0].errors == [error["message"]]


class Crashing(MeanClassifier):
    """A model whose device fails as CUDA's do, with a message of several lines."""

    def __init__(self):
        super().__init__(shape=(None, 3, 150, 33, 1))

    def _logits(self, windows):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                           "CUDA kernel errors might be asynchronously reported at some other API call")


def test_a_failed_classification_is_its_errors_first_line(tmp_path, short_clip):
    from stgcn_rt.pipeline.runner import Pipeline, PipelineConfig

    events = tmp_path / "events.jsonl"
    config = PipelineConfig([str(short_clip)], events, stride=10, min_frames=10, pose_workers=1)
    Pipeline(config, Crashing(), status=io.StringIO()).run()
    assert [e["message"] for e in read_events(events, "error")] == [
        "classification failed: CUDA error: an illegal memory access was encountered"]


def quiet_pipeline(tmp_path, classifier=None):
    """A Pipeline (not run) whose events go to tmp_path/events.jsonl and whose console is a buffer."""
    from stgcn_rt.pipeline.events import EventLog
    from stgcn_rt.pipeline.runner import Pipeline, PipelineConfig

    pipeline = Pipeline(PipelineConfig(["door"], tmp_path / "events.jsonl"),
                        classifier or MeanClassifier(shape=(None, 3, 150, 33, 1)), status=io.StringIO())
    pipeline.events = EventLog(pipeline.config.events, {"run": "r1"})
    return pipeline


def live_camera(pipeline, **state):
    from stgcn_rt.pipeline.runner import CameraState
    from stgcn_rt.pipeline.sources import FrameReader, SourceSpec
    from stgcn_rt.runtime.predict import SkeletonWindow

    spec = SourceSpec("rtsp://u:p@10.0.0.9/live", "door")
    camera = CameraState(spec, FrameReader(spec), SkeletonWindow(150, 5), **state)
    pipeline.cameras["door"] = camera
    return camera


def test_reconnects_are_camera_events(tmp_path):
    pipeline = quiet_pipeline(tmp_path)
    camera = live_camera(pipeline)
    counters = camera.reader.counters
    for reconnects, read in ((1, 0), (2, 0), (2, 5), (3, 40), (3, 41), (3, 60)):
        counters.reconnects, counters.read = reconnects, read
        pipeline._report_reconnects(camera)
    counters.error = "cannot open rtsp://u:***@10.0.0.9/live"
    pipeline._report_reader_error(camera)
    pipeline._report_reader_error(camera)  # told once
    pipeline.events.close()
    assert [(e["state"], e.get("attempt", e.get("attempts"))) for e in read_events(pipeline.config.events)] == [
        ("connecting", 1), ("connecting", 2), ("reconnected", 2), ("reconnecting", 3), ("reconnected", 3),
        ("failed", None)]
    assert all(e["run"] == "r1" and e["camera"] == "door" for e in read_events(pipeline.config.events))
    assert "p@" not in pipeline.config.events.read_text()


def test_falling_behind_real_time_is_one_warning_with_what_to_change(tmp_path):
    from stgcn_rt.pipeline.runner import Timings

    pipeline = quiet_pipeline(tmp_path)
    camera = live_camera(pipeline)
    camera.reader.counters.fps = 25.0
    assert camera.falling_behind(24.0) is None
    assert camera.falling_behind(10.0) == "its frames come through at 10.0 fps, the source gives 25"
    camera.queue_ms = Timings([2900.0] * 5)
    assert camera.falling_behind(25.0) == "its windows wait 2.9 s for the model"
    camera.queue_ms = Timings()
    for frames in (20, 40, 60, 80):  # 10 frames a second, from the second status interval on
        camera.frames_done = frames
        pipeline._warn_if_behind(camera)
    warnings = [line for line in pipeline.status.getvalue().splitlines() if line.startswith("warning")]
    assert warnings == ["warning: camera door falls behind real time (its frames come through at 10.0 fps, the "
                        "source gives 25): fewer cameras, a larger --stride, an INT8 model (stgcn-rt quantize) or "
                        "the GPU (--device cuda) would let it keep up"]


def test_video_without_h264_falls_back_to_mp4v_with_a_note(tmp_path, monkeypatch):
    from stgcn_rt.pipeline import annotate

    monkeypatch.setitem(sys.modules, "av", None)  # no PyAV
    monkeypatch.setattr(annotate, "CODECS", ("pyav-h264", "opencv-mp4v"))
    video = annotate.VideoOutput(tmp_path / "out" / "cam.mp4", 25.0)
    video.write(np.zeros((480, 640, 3), np.uint8))
    video.close()
    assert video.codec == "opencv-mp4v" and (tmp_path / "out" / "cam.mp4").stat().st_size > 0
    pipeline = quiet_pipeline(tmp_path)
    pipeline._note_codec(video)
    pipeline._note_codec(video)
    assert pipeline.status.getvalue() == f"note: {annotate.MP4V_NOTE}\n"


def test_timings_keep_the_mean_of_all_and_of_the_last_few_in_bounded_memory():
    from stgcn_rt.pipeline.runner import RECENT_TIMINGS, Timings

    timings = Timings()
    assert timings.mean() == timings.mean(5) == 0.0
    for value in range(1000):
        timings.add(float(value))
    assert timings.mean() == 499.5 and timings.mean(4) == 997.5
    assert timings.mean(10 * RECENT_TIMINGS) == np.mean(range(1000 - RECENT_TIMINGS, 1000))
    assert len(timings.recent) == RECENT_TIMINGS


@pytest.mark.parametrize(("pose", "device", "process"), [
    ("blazepose", "cuda", False), ("blazepose", "cuda", None), ("blazepose", "cpu", None), ("mediapipe", "cpu", None)])
def test_blazepose_on_a_gpu_in_this_process_runs_with_a_short_switch_interval_given_back_after(
        tmp_path, monkeypatch, short_clip, pose, device, process):
    """BlazePose's lane gets the interpreter lock back within POSE_SWITCH_INTERVAL_S of asking after
    each GPU call; in a process of its own (by default on a GPU) no lane is here to ask. The stage
    itself is a stand-in here (no GPU needed)."""
    from stgcn_rt.pipeline import runner

    class Stage:
        def close(self):
            pass

    before, seen = sys.getswitchinterval(), []
    config = runner.PipelineConfig([str(short_clip)], tmp_path / "events.jsonl", pose=pose, pose_device=device,
                                   pose_process=process)
    pipeline = runner.Pipeline(config, MeanClassifier(shape=(None, 3, 150, 33, 1)), status=io.StringIO())
    monkeypatch.setattr(pipeline, "_pose_stage", lambda cameras: Stage())
    monkeypatch.setattr(pipeline, "_loop", lambda *args: seen.append(sys.getswitchinterval()))
    pipeline.run()
    assert seen == [pytest.approx(runner.POSE_SWITCH_INTERVAL_S if process is False else before)]
    assert sys.getswitchinterval() == before
