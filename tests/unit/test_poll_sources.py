"""The registry of poll sources: one entry per source, each naming a real interval setting."""

from __future__ import annotations

from config.settings import PollSettings
from workers.poll_sources import POLL_SOURCES, demo_intervals, poll_intervals


def test_every_source_is_paced_by_its_own_poll_setting() -> None:
    settings = [source.interval_setting for source in POLL_SOURCES]
    assert len(set(settings)) == len(POLL_SOURCES)
    assert set(settings) <= set(PollSettings.model_fields)


def test_intervals_are_reported_by_the_name_poll_marks_carry() -> None:
    poll = PollSettings(balance_interval_s=60, report_interval_s=7200)
    assert poll_intervals(poll) == {
        "advertiser_balance": 60.0,
        "bc_cost": 900.0,
        "bc_transaction": 900.0,
        "report": 7200.0,
        "bc_balance": 900.0,
    }


def test_the_demo_polls_every_source_within_seconds() -> None:
    demo = PollSettings.model_validate(demo_intervals())
    assert all(source.interval_s(demo) <= 10 for source in POLL_SOURCES)
