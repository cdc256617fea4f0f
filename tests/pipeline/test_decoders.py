import os
import time

import numpy as np
import pytest

pytest.importorskip("cv2")

from stgcn_rt.pipeline.decoders import DecoderPool, default_workers  # noqa: E402
from stgcn_rt.pipeline.sources import FrameReader, SourceSpec, parse_sources  # noqa: E402


def drain(pool, copy=True, timeout=60.0):
    """Every camera's frames (images copied) and the frames' slots, releasing each as it comes."""
    got = {name: [] for name in pool.readers}
    deadline = time.monotonic() + timeout
    while not all(reader.done for reader in pool.readers.values()):
        assert time.monotonic() < deadline, "the decoders did not finish"
        for name, reader in pool.readers.items():
            while not reader.frames.empty():
                frame = reader.frames.get_nowait()
                got[name].append((frame.index, frame.image.copy() if copy else None, frame.slot))
                reader.release(frame)
        pool.flush()
        time.sleep(0.001)
    return got


def test_frames_decoded_in_processes_equal_a_reader_threads_in_order(videos):
    specs = parse_sources([str(videos["clean_and_jerk"]), str(videos["skateboarding"])])
    reference = FrameReader(specs[0], queue_size=400)
    reference.start()
    reference.join(60)
    expected = [reference.frames.get_nowait().image for _ in range(reference.frames.qsize())]
    with DecoderPool(specs, workers=1, slots=3) as pool:
        got = drain(pool)
        counters = {name: reader.counters for name, reader in pool.readers.items()}
    first = got["clean_and_jerk"]
    assert [index for index, _, _ in first] == list(range(300)) == list(range(len(expected)))
    assert all(np.array_equal(image, want) for (_, image, _), want in zip(first, expected))
    assert {slot for _, _, slot in first} == {0, 1, 2}  # three slots, reused for 300 frames
    assert [index for index, _, _ in got["skateboarding"]] == list(range(300))
    for c in counters.values():
        assert (c.read, c.dropped, c.error, c.finished) == (300, 0, None, True)
        assert c.fps == pytest.approx(30, abs=0.1)


def test_with_a_feed_the_frames_go_there_in_order_and_the_counters_say_how_many(videos, tmp_path):
    """The readers get no frames, only counters (those of frames read alone, now and then, not a
    message a frame); the feed gets every frame's place, each camera's in order, readable in the block."""
    import queue

    specs = parse_sources([str(videos["clean_and_jerk"]), str(tmp_path / "gone.mp4")])
    reference = FrameReader(specs[0], queue_size=400)
    reference.start()
    reference.join(60)
    expected = [reference.frames.get_nowait().image for _ in range(reference.frames.qsize())]
    fed, notified = [], []
    with DecoderPool(specs, workers=1, slots=3, feed=True, notify=notified.append) as pool:
        reader = pool.readers["clean_and_jerk"]
        deadline = time.monotonic() + 60
        while not (reader.counters.finished and len(fed) == reader.sent):
            assert time.monotonic() < deadline, "the decoders did not finish"
            try:
                batch = pool.feed.get(timeout=0.1)
            except queue.Empty:
                continue
            for row, slot, index, timestamp in batch:
                assert np.array_equal(pool.frames[row, slot], expected[index]) and timestamp > 0
                fed.append((row, index))
                pool.release(row, slot)
            pool.flush()
        assert reader.frames.empty() and pool.readers["gone"].frames.empty()
        gone = pool.readers["gone"]
    assert fed == [(0, index) for index in range(300)] and reader.sent == 300
    assert (gone.sent, gone.counters.finished) == (0, True)
    assert notified.count("clean_and_jerk") < 30  # 300 frames read in about 2 s here: counters a few times


def test_a_missing_file_fails_its_camera_alone(videos, tmp_path):
    specs = parse_sources([str(tmp_path / "gone.mp4"), str(videos["clean_and_jerk"])])
    with DecoderPool(specs, workers=2) as pool:
        got = drain(pool, copy=False)
        gone = pool.readers["gone"].counters
    assert got["gone"] == [] and gone.finished
    assert gone.error == f"cannot open {tmp_path / 'gone.mp4'}: no such file"
    assert len(got["clean_and_jerk"]) == 300


def test_a_dead_decoding_process_fails_its_cameras_with_one_line(videos):
    specs = parse_sources([str(videos["clean_and_jerk"])])
    with DecoderPool(specs, workers=1, slots=2) as pool:
        reader = pool.readers["clean_and_jerk"]
        frame = reader.frames.get(timeout=30)  # holds one slot
        os.kill(pool._processes[0].pid, 9)
        deadline = time.monotonic() + 10
        while not reader.counters.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.release(frame)
    assert reader.counters.finished
    assert reader.counters.error == "its decoding process stopped (exit code -9)"


def test_close_stops_workers_that_wait_for_slots(videos):
    specs = parse_sources([str(videos["clean_and_jerk"])])
    pool = DecoderPool(specs, workers=1, slots=2).start()
    pool.readers["clean_and_jerk"].frames.get(timeout=30)  # never released: the worker waits
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert not any(process.is_alive() for process in pool._processes)


def test_default_workers_leave_half_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert (default_workers(250), default_workers(3), default_workers(1)) == (8, 3, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers(64) == 1


def _fill(block, value):
    np.frombuffer(block, np.uint8)[:] = value


@pytest.mark.parametrize("memfd", [True, False], ids=["memory-file", "multiprocessing"])
def test_shared_memory_is_shared_with_a_spawned_process(monkeypatch, memfd):
    """An anonymous memory file on Linux (no room needed in /dev/shm), multiprocessing's elsewhere."""
    import multiprocessing

    from stgcn_rt.pipeline import decoders

    if not memfd:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    elif not hasattr(os, "memfd_create"):
        pytest.skip("no memfd_create here")
    context = multiprocessing.get_context("spawn")
    block, memory = decoders.shared_memory(4096, context)
    assert isinstance(block, decoders._MemoryFile) == memfd
    process = context.Process(target=_fill, args=(block, 7))
    process.start()
    process.join(60)
    assert process.exitcode == 0 and (np.frombuffer(memory, np.uint8) == 7).all()


class LiveSpec(SourceSpec):
    """A file read as a live camera is: no waiting for the pipeline, frames dropped instead; at its end
    it reconnects, i.e. plays again."""

    @property
    def live(self) -> bool:
        return True


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_live_camera_without_free_slots_drops_frames_and_keeps_its_slots(videos):
    """Its reader decodes into its two slots, then aside; the full queue drops the oldest frame and
    gives its slot back: no slot is ever lost, every image is the frame decoded."""
    import threading

    from stgcn_rt.pipeline.decoders import _SlotReader

    reference = FrameReader(parse_sources([str(videos["clean_and_jerk"])])[0], queue_size=400)
    reference.start()
    reference.join(60)
    expected = [reference.frames.get_nowait().image for _ in range(reference.frames.qsize())]
    slots = np.zeros((2, 480, 640, 3), np.uint8)
    reader = _SlotReader(LiveSpec(str(videos["clean_and_jerk"]), "door"), False, slots, threading.Condition())
    reader.start()
    wait_for(lambda: reader.counters.read >= 300)
    reader.stop()
    reader.join(10)
    left = [reader.frames.get_nowait() for _ in range(reader.frames.qsize())]
    read = reader.counters.read
    assert [f.index for f in left] == [read - 2, read - 1] and reader.counters.dropped == read - 2
    assert sorted([f.slot for f in left if f.slot is not None] + list(reader.idle)) == [0, 1]
    for frame in left:
        assert np.array_equal(frame.image, expected[frame.index % 300])
        assert (frame.slot is None) != np.shares_memory(frame.image, slots)


def test_a_live_cameras_frames_beyond_its_slots_are_dropped_and_counted(videos):
    """In the worker: two slots never handed back; two frames sent, the others dropped (by the
    reader's queue or for want of a slot) and counted."""
    import queue
    import threading

    from stgcn_rt.pipeline.decoders import _decode, _received

    shape = (1, 2, 480, 640, 3)
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    messages: list = []

    def counters():
        while not out.empty():
            messages.extend(out.get_nowait())
        return [_received(message[1]) for message in messages if len(message) == 2]

    worker = threading.Thread(target=_decode, args=([(0, LiveSpec(str(videos["clean_and_jerk"]), "door"))],
                                                    bytearray(int(np.prod(shape))), shape, False, queue.Queue(),
                                                    out, stop))
    with pytest.MonkeyPatch.context() as patch:  # signals are the main thread's, where a worker process has it
        patch.setattr("signal.signal", lambda *args: None)
        worker.start()
        wait_for(lambda: any(c.read >= 300 for c in counters()))
        stop.set()
        worker.join(10)
    last = counters()[-1]
    assert sorted(message[1] for message in messages if len(message) == 4) == [0, 1]
    assert last.read - 3 <= last.dropped <= last.read - 2  # a frame may be between its decoding and the queue
