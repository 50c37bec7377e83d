"""``credit.expiring`` and ``credit.expired``: credit that will be, or was, forfeited unused.

Per live credit with an expiry (declared in the ledger), the unused estimate
(``figures.credit_estimates``) and its projected forfeit at the current burn rate:

- ``credit.expiring`` fires once per horizon crossed (``detect.expiring_horizons_days``,
  default 14, 7, 3, 1 days before ``valid_to``) while unused > 0; a credit first seen inside
  several horizons fires for the tightest only. Each (credit, horizon) is its own episode, and
  all of a credit's resolve when it is used up or expires.
- ``credit.expired`` (one-shot) when ``valid_to`` has passed with money left: the forfeited
  amount is the ``PROMOTION_EXPIRED`` transaction's if one was matched, else the last estimate.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from msgspec.structs import replace

from config.settings import DetectSettings
from service.detect.episodes import (
    Episodes,
    Rule,
    Subject,
    Value,
    close,
    notify_once,
    open_,
    subject_of,
    who,
)
from service.detect.facts import AccountSnapshot
from service.detect.figures import credit_estimates, grant_burn
from service.detect.ledger import AccountLedger, Entry, forfeits
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import PROMOTION_ISSUED

__all__ = ["EXPIRED", "EXPIRING", "evaluate"]

EXPIRING = "credit.expiring"
EXPIRED = "credit.expired"
_ESTIMATE = "estimate reconciled against grant_balance"


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    if state.last_observed_at is None or state.now is None:
        return state, []
    if not ledger.credits and not state.transactions:
        # No credit to estimate (the usual account): nothing is projected to be forfeited.
        return (replace(state, credit_unused={}) if state.credit_unused else state), []
    now = state.now
    subject = subject_of(state)
    entries, left = credit_estimates(state, ledger)
    # The burn rate only matters to a live credit that expires: most accounts have none.
    dated = any(entry.id in left and entry.valid_to is not None for entry in entries)
    burn = grant_burn(state, settings, ledger) if dated else None
    projected = forfeits(entries, left, burn_per_day=burn, now=now)
    episodes = Episodes.of(state)
    notified = list(state.notified)
    transitions: list[AlertTransition] = []
    horizons = sorted(set(settings.expiring_horizons_days), reverse=True)
    for entry in entries:
        if entry.valid_to is None or not entry.declared:
            continue
        if entry.id in left:
            transitions += _expiring(
                episodes,
                notified,
                subject,
                entry,
                now=now,
                unused=left[entry.id],
                forfeit=projected.get(entry.id, left[entry.id]),
                horizons=horizons,
            )
        elif now >= entry.valid_to:
            transitions += _end_expiring(episodes, subject, entry, now, "expired")
            transitions += _expired(state, notified, subject, entry, settings)
    # What each live credit is projected to forfeit: if this was the last look before its
    # expiry (and no PROMOTION_EXPIRED says better), that is what credit.expired reports.
    return episodes.updated(state, notified=notified, credit_unused=projected), transitions


def _expiring(
    episodes: Episodes,
    notified: list[str],
    subject: Subject,
    entry: Entry,
    *,
    now: datetime,
    unused: Decimal,
    forfeit: Decimal,
    horizons: list[int],
) -> list[AlertTransition]:
    assert entry.valid_to is not None
    if unused <= 0:
        return _end_expiring(episodes, subject, entry, now, "used up")
    crossed = [h for h in horizons if entry.valid_to - now <= timedelta(days=h)]
    fresh = [h for h in crossed if _key(entry, h) not in notified]
    if not fresh:
        return []
    # First seen inside several horizons: one notification, for the tightest.
    for horizon in fresh:
        notified.append(_key(entry, horizon))
    horizon = min(fresh)
    days_left = Decimal((entry.valid_to - now).total_seconds() / 86_400)
    values: dict[str, Value] = {
        "credit_id": entry.id,
        "unused": unused,
        "expires_at": entry.valid_to,
        "projected_forfeit": forfeit,
        "horizon_days": horizon,
        "note": _ESTIMATE,
    }
    summary = (
        f"Credit {_name(entry)} of {who(subject)} expires in {days_left:.1f} days "
        f"({entry.valid_to:%Y-%m-%d %H:%M} UTC) with about {unused:.2f} {subject.currency} "
        f"unused; at the current spend about {forfeit:.2f} will be forfeited. "
        "Figures are estimates reconciled against the grant balance."
    )
    rule = Rule(EXPIRING, "warning" if horizon > 3 else "critical", f"{entry.id}|{horizon}d")
    return open_(episodes, subject, rule, now, (summary, values))


def _end_expiring(
    episodes: Episodes, subject: Subject, entry: Entry, now: datetime, why: str
) -> list[AlertTransition]:
    prefix = f"{EXPIRING}|{entry.id}|"
    transitions = []
    for key in sorted(k for k in episodes if k.startswith(prefix)):
        horizon = key.removeprefix(prefix)
        rule = Rule(EXPIRING, "warning", f"{entry.id}|{horizon}")
        if why == "used up":
            summary = f"Credit {_name(entry)} of {who(subject)} is used up: nothing to forfeit."
        else:
            summary = f"Credit {_name(entry)} of {who(subject)} has expired (see credit.expired)."
        values = {"credit_id": entry.id, "expires_at": entry.valid_to or "", "reason": why}
        transitions.append(close(episodes, subject, rule, now, (summary, values)))
    return transitions


def _expired(
    state: AccountState,
    notified: list[str],
    subject: Subject,
    entry: Entry,
    settings: DetectSettings,
) -> list[AlertTransition]:
    assert entry.valid_to is not None and state.now is not None
    if state.now - entry.valid_to > timedelta(hours=settings.event_window_h):
        return []  # long before we started watching: recorded, not news
    matched = [
        r.amount
        for r in state.transactions.values()
        if r.credit_id == entry.id and r.transaction_type != PROMOTION_ISSUED
    ]
    forfeited = matched[0] if matched else state.credit_unused.get(entry.id, Decimal(0))
    forfeited = forfeited.quantize(Decimal("0.01"))
    if forfeited <= 0:
        return []
    source = "PROMOTION_EXPIRED transaction" if matched else _ESTIMATE
    values: dict[str, Value] = {
        "credit_id": entry.id,
        "forfeited": forfeited,
        "expired_at": entry.valid_to,
    }
    values["source"] = source
    summary = (
        f"Credit {_name(entry)} of {who(subject)} expired on {entry.valid_to:%Y-%m-%d %H:%M} "
        f"UTC: {forfeited:.2f} {subject.currency} unused was forfeited."
    )
    rule = Rule(EXPIRED, "warning", entry.id)
    return notify_once(notified, subject, rule, entry.valid_to, (summary, values))


def _key(entry: Entry, horizon: int) -> str:
    return f"{EXPIRING}|{entry.id}|{horizon}d"


def _name(entry: Entry) -> str:
    return f"'{entry.name}' ({entry.id})" if entry.name else entry.id
