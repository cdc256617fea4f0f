"""`stgcn-rt run` on real videos: windows per camera, valid JSON Lines, faults, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from helpers import cli_runner  # noqa: E402

from stgcn_rt.cli import cli  # noqa: E402

FIELDS = {"kind", "time", "camera", "frames", "persons", "class", "probabilities", "latency_ms", "batch"}


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_videos_at_once(tmp_path, videos, demo_models):
    _, onnx_path = demo_models
    events = tmp_path / "events.jsonl"
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]),
                                      "--source", str(videos["skateboarding"]), "--model", str(onnx_path),
                                      "--stride", "10", "--events", str(events),
                                      "--save-video", str(tmp_path / "video")])
    assert result.exit_code == 0, result.stderr
    predictions = [e for e in read_events(events) if e["kind"] == "prediction"]
    per_camera = {}
    for event in predictions:
        assert set(event) == FIELDS
        assert set(event["probabilities"]) == {"normal", "shoplifting"}
        assert abs(sum(event["probabilities"].values()) - 1) < 1e-4
        first, last = event["frames"]
        assert last - first + 1 == min(last + 1, 150) and (last + 1) % 10 == 0
        per_camera.setdefault(event["camera"], []).append(last)
    assert {k: len(v) for k, v in per_camera.items()} == {"clean_and_jerk": 30, "skateboarding": 30}
    assert per_camera["clean_and_jerk"] == sorted(per_camera["clean_and_jerk"])
    assert "clean_and_jerk" in result.stdout and "events:" in result.stdout
    assert (tmp_path / "video" / "clean_and_jerk.mp4").stat().st_size > 0
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
    cameras = {e["camera"] for e in read_events(events)}
    assert "clean_and_jerk" in cameras and "missing" not in cameras
    assert sum(e["camera"] == "clean_and_jerk" for e in read_events(events)) == 12


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
                             "--model", str(onnx_path), "--stride", "25", "--realtime", "--events", str(events)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and (not events.exists() or len(events.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    lines = events.read_text().splitlines()
    assert len(lines) >= 2 and all(json.loads(line)["kind"] == "prediction" for line in lines)
    assert len(lines) < 12  # it really stopped early: the whole clip gives 12 windows at this stride


def test_multi_person_windows_on_a_real_video(tmp_path, videos):
    """M=5: detector + slot tracker + per-person pose; the main person stays in one slot."""
    import numpy as np

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
    result = cli_runner().invoke(cli, ["run", "--source", str(videos["clean_and_jerk"]), "--model", str(onnx_path),
                                      "--persons", "5", "--stride", "50", "--events", str(events)])
    assert result.exit_code == 0, result.stderr
    predictions = read_events(events)
    assert len(predictions) == 6 and all(set(e) == FIELDS for e in predictions)
    assert all(e["persons"] and set(e["persons"]) <= set(range(5)) for e in predictions)
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
    assert lines.index(alerts[0]) == 2  # right after the second prediction
    clip = tmp_path / "clips" / "clean_and_jerk-000059.mp4"
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
    assert len(read_events(events)) == 6 and server.requests >= 1


def test_status_line_says_what_each_camera_is_doing():
    from stgcn_rt.pipeline.runner import CameraState
    from stgcn_rt.pipeline.sources import FrameReader, SourceSpec
    from stgcn_rt.runtime.predict import SkeletonWindow

    def camera(frames_done=0, **counters):
        spec = SourceSpec("rtsp://u:p@10.0.0.9/live", "door")
        state = CameraState(spec, FrameReader(spec), SkeletonWindow(150, 5), frames_done=frames_done,
                            pose_ms=[20.0, 40.0], classify_ms=[3.0])
        for key, value in counters.items():
            setattr(state.reader.counters, key, value)
        return state

    assert camera(reconnects=2).status(10.0) == "door: connecting (retry 2)"
    assert camera(reconnects=5, error="cannot open rtsp://u:***@10.0.0.9/live").status(10.0) == "door: failed"
    assert camera(250, read=250, finished=True).status(10.0) == "door: done, 250 frames"
    assert camera(250, read=260, dropped=4, reconnects=1).status(10.0) == \
        "door: 25.0 fps, pose 30 ms, classify 3 ms, drops 4"
