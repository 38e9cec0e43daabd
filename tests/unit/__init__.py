"""Unit tests: plain Python, no Ray, in seconds (``pytest tests/unit``)."""
