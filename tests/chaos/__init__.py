"""Chaos tests: real processes, real Redis, things killed on purpose."""
