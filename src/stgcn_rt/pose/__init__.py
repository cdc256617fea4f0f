"""Pose on the GPU: MediaPipe's own BlazePose networks (read from the installed mediapipe wheel) run
by PyTorch, batched across cameras and persons."""
