"""Unit tests: pure rules, parsing, config validation and properties; no Redis, no network, no
subprocess of the service (``make test-unit``, ``pytest -m unit``)."""
