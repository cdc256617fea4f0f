"""Runners, one module per backend, imported lazily by ``load_classifier``."""
