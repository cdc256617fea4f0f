"""File helpers: atomic writes (temp file + rename) and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stgcn_rt.errors import StgcnError


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_output_path(path: str | os.PathLike[str], suffixes: tuple[str, ...] = (), option: str = "-o",
                      why: str = "stgcn-rt picks a model's backend by its suffix") -> Path:
    """Fail early, before any long work, when the output cannot be written (or, where ``suffixes`` are
    given, would not end in one of them, ``why`` saying why it matters). ``option``: the command-line
    option that names the output, for the message."""
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise StgcnError(f"output {out} should end in {' or '.join(suffixes)}: {why}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise StgcnError(f"output directory {parent} does not exist: create it (mkdir -p {parent}) or "
                         f"choose another {option}")
    if out.is_dir():
        raise StgcnError(f"output {out} is a directory: give a file name")
    if not os.access(parent, os.W_OK):
        raise StgcnError(f"output directory {parent} is not writable")
    return out


def check_output_folder(folder: str | os.PathLike[str], option: str) -> Path:
    """Fail early when files cannot be written into ``folder``, without making it: it is made when
    its first file is written, so a run that fails before leaves no empty folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StgcnError(f"{option} {folder} is a file, not a folder")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise StgcnError(f"{option} {folder}: {existing} is not a writable folder")
    return folder


def current_umask() -> int:
    """The process's umask. Reading it means setting it: it is set to 022 for that instant, so a file
    another thread creates meanwhile gets the common default rather than mode 0666."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves no partial output behind.
    """
    out = check_output_path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    except OSError as exc:  # a read-only or pseudo file system that os.access() did not flag
        raise StgcnError(f"cannot write {out}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp made the file 0600; the output gets the mode any new file gets (0644 under umask 022),
        # so that a Triton container or another user can read a model, an engine or a report
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
