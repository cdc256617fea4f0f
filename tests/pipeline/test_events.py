import json

from stgcn_rt.pipeline.events import AlertPolicy, EventLog


def test_alert_needs_consecutive_windows_and_clears_with_hysteresis():
    policy = AlertPolicy(alert_class=1, threshold=0.8, min_windows=3, hysteresis=0.1)
    feed = [0.9, 0.9, 0.2, 0.9, 0.9, 0.95, 0.75, 0.75, 0.6, 0.6, 0.85, 0.6, 0.6, 0.6]
    changes = [policy.update("cam", p) for p in feed]
    # one noisy low window resets the count; 0.75 is under 0.8 but above the 0.7 release level
    assert changes == [None, None, None, None, None, "raised", None, None, None, None, None,
                       None, None, "cleared"]
    assert policy.update("other", 0.99) is None  # cameras are independent


def test_event_log_appends_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind":"prediction","old":true}\n')
    log = EventLog(path)
    log.write({"kind": "prediction", "camera": "a"})
    # readable by another process before close: flushed line by line
    lines = path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["prediction", "prediction"]
    log.write({"kind": "alert", "camera": "a"})
    log.close()
    assert log.counts == {"prediction": 1, "alert": 1}
    assert len(path.read_text().splitlines()) == 3


def test_lines_are_fsynced_together_not_one_by_one(tmp_path, monkeypatch):
    """A write flushes its line but leaves the disk's flush to the syncing thread (and close): a
    window's line never waits for the disk. With a long interval, fifty lines and close: one fsync."""
    import os
    import time

    from stgcn_rt.pipeline import events

    synced = []
    monkeypatch.setattr(events.os, "fsync", lambda descriptor: synced.append(descriptor))
    monkeypatch.setattr(events, "SYNC_SECONDS", 60.0)
    log = EventLog(tmp_path / "a.jsonl")
    for k in range(50):
        log.write({"kind": "prediction", "k": k})
    assert not synced and len((tmp_path / "a.jsonl").read_text().splitlines()) == 50
    log.close()
    assert len(synced) == 1
    monkeypatch.setattr(events, "SYNC_SECONDS", 0.01)
    log = EventLog(tmp_path / "b.jsonl")
    log.write({"kind": "prediction"})
    deadline = time.monotonic() + 30
    while len(synced) == 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(synced) == 2  # the thread's, before close
    log.close()
    assert len(synced) == 2 and os.path.getsize(tmp_path / "b.jsonl") > 0  # nothing left to sync at close
