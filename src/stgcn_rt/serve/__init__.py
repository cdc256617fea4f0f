"""Serving through a Triton Inference Server: a model repository for one (``repository``) and a local
server in front of a classifier (``server``). Clients use the runtime's Triton backend."""
