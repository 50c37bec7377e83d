"""Integration tests: the code against a real Redis, in one process (``pytest -m integration``)."""
