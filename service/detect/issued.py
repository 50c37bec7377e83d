"""``credit.issued`` (info), and ``credit.expired`` for expiries the ledger does not know.

Runs on ``credit_transaction`` snapshots (each transaction reaches here once, see
``facts``). A ``PROMOTION_ISSUED`` is news: which declared credit it is, or that it is
undeclared (then it enters the ledger as an undeclared entry: amount and date, no known
expiry). A ``PROMOTION_EXPIRED`` that matches no declared credit is notified here; the
matched ones are ``expiry``'s. Transactions older than ``detect.event_window_h`` when first
seen (history, on a first start) are recorded silently.

Usage::

    state, transitions = evaluate(state, snapshot, ledger, settings)
"""

from __future__ import annotations

from datetime import timedelta

from msgspec.structs import replace

from config.settings import DetectSettings
from service.detect.episodes import Rule, Value, notify_once, subject_of, who
from service.detect.expiry import EXPIRED
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import PROMOTION_ISSUED, CreditTransactionSnapshot

__all__ = ["ISSUED", "evaluate"]

ISSUED = "credit.issued"


def evaluate(
    state: AccountState,
    snapshot: CreditTransactionSnapshot,
    ledger: AccountLedger,
    settings: DetectSettings,
) -> tuple[AccountState, list[AlertTransition]]:
    if snapshot.observed_at - snapshot.create_time > timedelta(hours=settings.event_window_h):
        return state, []
    record = state.transactions[snapshot.transaction_id]
    subject = subject_of(state)
    notified = list(state.notified)
    credit = ledger.credit(record.credit_id) if record.credit_id else None
    values: dict[str, Value] = {
        "amount": snapshot.amount,
        "transaction_id": snapshot.transaction_id,
        "credit_id": credit.id if credit else "",
        "declared": "yes" if credit else "no",
    }
    if snapshot.transaction_type == PROMOTION_ISSUED:
        if credit is not None:
            values["expires_at"] = credit.valid_to
            detail = f"credit '{credit.name or credit.id}', valid to {credit.valid_to:%Y-%m-%d}"
        else:
            detail = "not in the ledger: declare it with its expiry date to be warned in time"
        summary = (
            f"New ad credit for {who(subject)}: {snapshot.amount:.2f} {subject.currency} "
            f"({detail})."
        )
        rule = Rule(ISSUED, "info", snapshot.transaction_id)
    elif credit is None:
        values["forfeited"] = snapshot.amount
        summary = (
            f"Ad credit of {who(subject)} expired: {snapshot.amount:.2f} {subject.currency} "
            "unused was forfeited (a credit the ledger does not know)."
        )
        rule = Rule(EXPIRED, "warning", snapshot.transaction_id)
    else:
        return state, []
    transitions = notify_once(notified, subject, rule, snapshot.create_time, (summary, values))
    return replace(state, **{"notified": notified}), transitions
