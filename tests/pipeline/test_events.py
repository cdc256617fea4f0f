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
