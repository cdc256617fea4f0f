"""Addresses in logs: camera and server URLs never show their passwords."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_url(source: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``; anything else unchanged."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
