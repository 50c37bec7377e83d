"""Fast polling for the end-to-end runs: every source polled within half a second, so a story
told on the sandbox's clock reaches the detectors without waiting on real intervals."""

from __future__ import annotations

from config.settings import PollSettings

FAST_POLLS = PollSettings(
    balance_interval_s=0.2,
    spend_interval_s=0.3,
    transaction_interval_s=0.3,
    report_interval_s=0.5,
    bc_balance_interval_s=0.5,
    spend_lookback_days=2,
)
