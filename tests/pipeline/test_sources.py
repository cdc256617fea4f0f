import pytest

pytest.importorskip("cv2")

from stgcn_rt.pipeline.sources import FrameReader, mask_url, parse_sources  # noqa: E402


def drain(reader):
    frames = []
    reader.start()
    while not reader.done:
        try:
            frames.append(reader.frames.get(timeout=0.1))
        except Exception:
            pass
    reader.join(5)
    return frames


def test_mask_url_hides_passwords():
    assert mask_url("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://admin:***@10.0.0.5:554/stream1"
    assert mask_url("http://cam.local/video") == "http://cam.local/video"
    assert mask_url("store/cam1.mp4") == "store/cam1.mp4"


def test_parse_sources_names_are_unique_and_safe():
    specs = parse_sources(["a/cam.mp4", "b/cam.mp4", "0", "rtsp://u:pw@host/x"])
    assert [s.name for s in specs] == ["cam", "cam-2", "camera0", "host"]
    assert [s.live for s in specs] == [False, False, True, True]
    assert "pw" not in specs[3].display


def test_a_folder_is_one_camera_per_video_in_it(tmp_path, videos):
    from stgcn_rt.errors import StgcnError

    for name in ("b.mp4", "a.MOV", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    specs = parse_sources([str(tmp_path), str(videos["clean_and_jerk"]), "0"])
    assert [s.location for s in specs] == [str(tmp_path / "a.MOV"), str(tmp_path / "b.mp4"),
                                           str(videos["clean_and_jerk"]), "0"]
    assert [s.name for s in specs] == ["a", "b", "clean_and_jerk", "camera0"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StgcnError, match=f"no videos .* in {empty}$"):
        parse_sources([str(empty)])


def test_reader_reads_a_real_video_at_640x480(videos):
    reader = FrameReader(parse_sources([str(videos["clean_and_jerk"])])[0], queue_size=8)
    frames = drain(reader)
    assert len(frames) == 300 == reader.counters.read
    assert frames[0].image.shape == (480, 640, 3)
    assert [f.index for f in frames] == list(range(300))
    assert reader.counters.error is None and reader.counters.dropped == 0


def test_a_camera_decodes_in_one_ffmpeg_thread(videos):
    """FFmpeg's default (a thread per core, frames side by side) would hold a live camera's frames back."""
    import cv2

    from stgcn_rt.pipeline.sources import DECODE_THREADS

    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV has no FFmpeg")
    capture = FrameReader(parse_sources([str(videos["clean_and_jerk"])])[0])._open()
    try:
        assert capture.get(cv2.CAP_PROP_N_THREADS) == DECODE_THREADS == 1
        assert capture.getBackendName() == "FFMPEG"
    finally:
        capture.release()


def test_device_indices_and_gstreamer_pipelines_open_as_opencv_picks():
    """Only files and URLs are pinned to FFmpeg (the option would fail a V4L2 or GStreamer capture)."""
    import cv2

    from stgcn_rt.pipeline.sources import open_capture

    class Recorder:  # cv2 with a VideoCapture that records how it was opened
        CAP_FFMPEG, CAP_PROP_N_THREADS, videoio_registry = cv2.CAP_FFMPEG, cv2.CAP_PROP_N_THREADS, cv2.videoio_registry
        opened: list = []

        def VideoCapture(self, *args):  # noqa: N802 - cv2's name
            self.opened.append(args)

    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV has no FFmpeg")
    recorder = Recorder()
    for location in (0, "videotestsrc ! videoconvert ! appsink", "rtsp://cam/stream"):
        open_capture(recorder, location)
    assert recorder.opened == [(0,), ("videotestsrc ! videoconvert ! appsink",),
                               ("rtsp://cam/stream", cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])]


def test_unreadable_and_truncated_files(tmp_path, videos):
    missing = FrameReader(parse_sources([str(tmp_path / "missing.mp4")])[0])
    assert drain(missing) == []
    assert missing.counters.error == f"cannot open {tmp_path / 'missing.mp4'}: no such file"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    unreadable = FrameReader(parse_sources([str(text)])[0])
    assert drain(unreadable) == []
    assert unreadable.counters.error == f"cannot open {text}"
    cut = tmp_path / "cut.mp4"
    data = videos["skateboarding"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    reader = FrameReader(parse_sources([str(cut)])[0])
    frames = drain(reader)  # the reader ends by itself, with the frames it could decode
    assert 0 <= len(frames) < 300


def test_live_source_retries_with_backoff_and_masks_the_password():
    from stgcn_rt.pipeline.sources import SourceSpec

    # a closed port on loopback: every attempt is refused at once
    reader = FrameReader(SourceSpec("rtsp://admin:s3cret@127.0.0.1:9/stream", "door"), max_retries=2)
    assert drain(reader) == []
    assert reader.counters.reconnects == 2
    assert reader.counters.error == "cannot open rtsp://admin:***@127.0.0.1:9/stream"
