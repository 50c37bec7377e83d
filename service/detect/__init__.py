"""Detect: turn snapshots into alert transitions, with per-account state in Redis."""
