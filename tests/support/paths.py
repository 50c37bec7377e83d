"""Where the tests find the repository's files: its root, the reply fixtures, the scenarios."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "support" / "fixtures"
SCENARIOS = ROOT / "tests" / "support" / "scenarios"
