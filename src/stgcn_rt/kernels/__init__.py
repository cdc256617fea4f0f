"""The project's GPU kernels for the ST-GCN network, written in OpenAI's Triton language: the kernels
and their launchers (``ops``), the network built on them (``network``) and their tile tuning."""
