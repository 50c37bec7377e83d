"""``discount.cap_near`` and ``discount.cap_reached``: a discount credit nears or hits its cap.

A discount credit takes ``percent`` off each charge up to ``cap`` in total while it is valid.
The discount used so far is estimated as ``percent`` of all spend on its valid days, up to the
cap. ``cap_near`` holds from ``detect.discount_cap_near_percent`` (80 %) of the cap until the
cap; ``cap_reached`` from the cap on (charges are full price from then). Both resolve when the
credit's validity ends.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

from config.ledger import Credit
from config.settings import DetectSettings
from service.detect.episodes import Episodes, Rule, Value, subject_of, sync, who
from service.detect.facts import AccountSnapshot
from service.detect.figures import spend_days
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["CAP_NEAR", "CAP_REACHED", "discount_used", "evaluate"]

CAP_NEAR = "discount.cap_near"
CAP_REACHED = "discount.cap_reached"


def discount_used(credit: Credit, daily_total: Mapping[date, Decimal]) -> Decimal:
    """``percent`` of the spend on the credit's valid (UTC) days, at most the cap."""
    assert credit.discount is not None
    first = credit.valid_from.date()
    last = (credit.valid_to - timedelta(microseconds=1)).date()
    spent = sum(
        (amount for day, amount in daily_total.items() if first <= day <= last),
        Decimal(0),
    )
    return min(spent * credit.discount.percent / 100, credit.discount.cap)


def evaluate(
    state: AccountState, snapshot: AccountSnapshot, ledger: AccountLedger, settings: DetectSettings
) -> tuple[AccountState, list[AlertTransition]]:
    if state.now is None or not any(credit.discount for credit in ledger.credits):
        return state, []
    now = state.now
    subject = subject_of(state)
    episodes = Episodes.of(state)
    transitions: list[AlertTransition] = []
    totals = spend_days(state, "total")
    for credit in ledger.credits:
        if credit.discount is None or now < credit.valid_from:
            continue
        cap = credit.discount.cap
        used = discount_used(credit, totals)
        valid = now < credit.valid_to
        near_line = cap * settings.discount_cap_near_percent / 100
        values: dict[str, Value] = {
            "credit_id": credit.id,
            "discount_used": used,
            "cap": cap,
            "percent": credit.discount.percent,
            "valid_to": credit.valid_to,
            "note": "estimate from observed spend",
        }
        name = f"'{credit.name or credit.id}'"
        ended = f"Discount {name} of {who(subject)}: its validity ended."
        transitions += sync(
            episodes,
            subject,
            Rule(CAP_NEAR, "info", credit.id),
            now,
            firing=valid and near_line <= used < cap,
            clear=not valid or used >= cap,
            fire=(
                f"Discount {name} of {who(subject)} is near its cap: about {used:.2f} of "
                f"{cap:.2f} {subject.currency} used.",
                values,
            ),
            resolve=(
                ended if not valid else f"Discount {name} of {who(subject)} reached its cap.",
                values,
            ),
        )
        transitions += sync(
            episodes,
            subject,
            Rule(CAP_REACHED, "warning", credit.id),
            now,
            firing=valid and used >= cap,
            clear=not valid,
            fire=(
                f"Discount {name} of {who(subject)} reached its cap of {cap:.2f} "
                f"{subject.currency}: charges are full price from now on.",
                values,
            ),
            resolve=(ended, values),
        )
    return episodes.updated(state), transitions
