"""Data sources: one module per format, each turning sample indices into arrays."""
