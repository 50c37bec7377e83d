"""Fast polling for the end-to-end runs: every source polled within a second or so, so a story
told on the sandbox's clock reaches the detectors without waiting on real intervals."""

from __future__ import annotations

from config.settings import PollSettings


def polls_every(
    *,
    balance_s: float,
    spend_s: float,
    report_s: float,
    bc_balance_s: float,
    lookback_days: int = 2,
) -> PollSettings:
    """Poll settings on short real intervals. The spend and transaction sources share one
    interval: no story here needs them apart."""
    return PollSettings(
        balance_interval_s=balance_s,
        spend_interval_s=spend_s,
        transaction_interval_s=spend_s,
        report_interval_s=report_s,
        bc_balance_interval_s=bc_balance_s,
        spend_lookback_days=lookback_days,
    )


FAST_POLLS = polls_every(balance_s=0.2, spend_s=0.3, report_s=0.5, bc_balance_s=0.5)
