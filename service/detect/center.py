"""Business-center rules: ``source.auth_failed``, and the center's own balance.

A poll that gets 40105/40104 publishes a ``source_status`` snapshot (``auth_failed``); the
next one that gets through publishes ``ok``. ``source.auth_failed`` (critical) fires when any
source of a business center fails auth and resolves when every failing source polls again
(statuses are ordered per source, so a late, older one changes nothing). ``bc_balance``
snapshots are recorded (grant balance of the center itself); no rule alerts on them yet.

Usage::

    evaluation = evaluate(state, snapshot)     # None: duplicate or older
"""

from __future__ import annotations

from service.detect.episodes import Episodes, Rule, Subject, sync
from service.detect.state import CenterState, Evaluation
from workers.snapshots import BcBalanceSnapshot, SourceStatusSnapshot

__all__ = ["AUTH_FAILED", "CenterSnapshot", "evaluate"]

AUTH_FAILED = "source.auth_failed"
CenterSnapshot = SourceStatusSnapshot | BcBalanceSnapshot


def evaluate(state: CenterState | None, snapshot: CenterSnapshot) -> Evaluation[CenterState] | None:
    current = state or CenterState(bc_id=snapshot.bc_id)
    if isinstance(snapshot, BcBalanceSnapshot):
        if current.balance_at is not None and snapshot.observed_at <= current.balance_at:
            return None
        balances = snapshot.balances
        recorded = current.model_copy(
            update={
                "balance_at": snapshot.observed_at,
                "currency": snapshot.currency,
                "grant": balances.grant_balance,
                "valid_grant": balances.valid_grant_balance,
            }
        )
        return Evaluation(recorded)
    known = current.status_at.get(snapshot.source)
    # Dates have whole seconds: an ``ok`` stamped with the same second as a failure comes
    # from the poll after it (a poller reports ``ok`` only after a failure it saw).
    recovers = snapshot.status == "ok" and snapshot.source in current.auth_failed
    if known is not None and (
        snapshot.observed_at < known or (snapshot.observed_at == known and not recovers)
    ):
        return None
    failing = set(current.auth_failed)
    if snapshot.status == "auth_failed":
        failing.add(snapshot.source)
    else:
        failing.discard(snapshot.source)
    subject = Subject("", "", snapshot.bc_id, current.currency or "XXX")
    values = {
        "sources": ",".join(sorted(failing)) or snapshot.source,
        "code": str(snapshot.code or ""),
    }
    episodes = Episodes.of(current)
    transitions = sync(
        episodes,
        subject,
        Rule(AUTH_FAILED, "critical", snapshot.bc_id),
        snapshot.observed_at,
        firing=bool(failing),
        clear=not failing,
        fire=(
            f"The TikTok API refuses the access token for business center {snapshot.bc_id} "
            f"({snapshot.code}): polling has stopped. Renew the token "
            "(CREDITWATCH_TIKTOK__ACCESS_TOKEN) or restore its access.",
            values,
        ),
        resolve=(f"Polling of business center {snapshot.bc_id} works again.", values),
    )
    recorded = current.model_copy(
        update={
            "status_at": {**current.status_at, snapshot.source: snapshot.observed_at},
            "auth_failed": sorted(failing),
            **episodes.fields(),
        }
    )
    return Evaluation(recorded, transitions)
