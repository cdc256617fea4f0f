"""``stgcn-rt bench``: every available backend side by side, and the multi-camera designs."""
