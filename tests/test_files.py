"""Outputs follow the umask like any other file, and appear whole or not at all."""

import os
import stat

import pytest

from stgcn_rt.files import atomic_output


@pytest.fixture
def umask():
    """Set the process's umask for one test; the old one comes back after it."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_output_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    with atomic_output(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"data")
    assert mode(tmp_path / "out.bin") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("stopped")
    assert not any(tmp_path.iterdir())


def test_checkpoints_models_and_events_are_readable_by_others(tmp_path, umask):
    """What a Triton container or another user reads: a checkpoint, its ONNX and the events."""
    from stgcn_rt.export.onnx_export import ExportOptions, export_onnx
    from stgcn_rt.model.checkpoint import load_checkpoint, make_demo_checkpoint
    from stgcn_rt.pipeline.events import EventLog

    umask(0o022)
    checkpoint = make_demo_checkpoint(tmp_path / "demo.pt")
    model, _ = export_onnx(load_checkpoint(checkpoint), tmp_path / "m.onnx", ExportOptions(seq_len=10),
                           validate=False)
    log = EventLog(tmp_path / "events.jsonl")
    log.write({"kind": "test"})
    log.close()
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {"demo.pt": 0o644, "m.onnx": 0o644,
                                                             "events.jsonl": 0o644}
