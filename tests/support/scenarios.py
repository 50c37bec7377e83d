"""The sandbox scenarios of the end-to-end and chaos runs, kept as YAML files in ``scenarios/``.

Each file names its tokens and ids as ``${NAME}`` placeholders (``string.Template``), filled
from the constants of the test that uses it, so a test's assertions and its scenario cannot
drift apart: ``SCENARIO = scenario_text("end_to_end", TOKEN=TOKEN, DRAINING=DRAINING)``.
"""

from __future__ import annotations

from string import Template

from tests.support.paths import SCENARIOS


def scenario_text(name: str, **values: str) -> str:
    """``scenarios/NAME.yaml`` with every ``${NAME}`` filled (a missing value is a KeyError)."""
    return Template((SCENARIOS / f"{name}.yaml").read_text()).substitute(values)
