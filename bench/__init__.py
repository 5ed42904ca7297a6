"""Benchmarks: ``python bench/manifests.py`` times the parser, ``python bench/uploads.py``
the upload endpoints."""
