"""The video pipeline: sources, pose, tracking, windows, events. Needs the [pipeline] extra."""
