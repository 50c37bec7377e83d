"""Business-center rules: ``source.auth_failed``, ``source.rate_limited``, the center's balance.

A poll that gets 40105/40104 publishes a ``source_status`` snapshot (``auth_failed``); one that
waits on a suspended endpoint (a persistent 40100) publishes ``rate_limited``; the next one that
gets through publishes ``ok``. ``source.auth_failed`` (critical) fires when any source of a
business center fails auth, ``source.rate_limited`` (warning) when any waits on a suspension;
each resolves when every source it names polls again (statuses are ordered per source, so a
late, older one changes nothing). Statuses are tracked per (source, connection): with several
access tokens reaching one business center, the alert names the connection whose token failed
(``values.connection``) and resolves once that connection polls again; entries without a
connection count as one unnamed connection. ``bc_balance`` snapshots are recorded (grant
balance of the center itself); no rule alerts on them yet.

Usage::

    evaluation = evaluate(state, snapshot)     # None: duplicate or older
"""

from __future__ import annotations

from msgspec.structs import replace

from service.detect.episodes import Episodes, Rule, Subject, Value, sync
from service.detect.state import CenterState, Evaluation
from workers.contract.alerts import AlertTransition
from workers.contract.snapshots import BcBalanceSnapshot, SourceStatusSnapshot

__all__ = ["AUTH_FAILED", "RATE_LIMITED", "CenterSnapshot", "evaluate"]

AUTH_FAILED = "source.auth_failed"
RATE_LIMITED = "source.rate_limited"
CenterSnapshot = SourceStatusSnapshot | BcBalanceSnapshot


def evaluate(state: CenterState | None, snapshot: CenterSnapshot) -> Evaluation[CenterState] | None:
    current = state or CenterState(bc_id=snapshot.bc_id)
    if isinstance(snapshot, BcBalanceSnapshot):
        if current.balance_at is not None and snapshot.observed_at <= current.balance_at:
            return None
        balances = snapshot.balances
        recorded = replace(
            current,
            **{
                "balance_at": snapshot.observed_at,
                "currency": snapshot.currency,
                "grant": balances.grant_balance,
                "valid_grant": balances.valid_grant_balance,
            },
        )
        return Evaluation(recorded)
    key = snapshot.status_key
    known = current.status_at.get(key)
    # Dates have whole seconds: an ``ok`` stamped with the same second as a failure comes
    # from the poll after it (a poller reports ``ok`` only after a failure it saw).
    # A bare source is a status recorded before statuses named their connection.
    held = set(current.auth_failed) | set(current.rate_limited)
    recovers = snapshot.status == "ok" and bool({key, snapshot.source} & held)
    if known is not None and (
        snapshot.observed_at < known or (snapshot.observed_at == known and not recovers)
    ):
        return None
    failing = _updated(current.auth_failed, snapshot, "auth_failed")
    limited = _updated(current.rate_limited, snapshot, "rate_limited")
    subject = Subject("", "", snapshot.bc_id, current.currency or "XXX")
    sources, connections = _named(failing, snapshot)
    values: dict[str, Value] = {
        "sources": sources,
        "connection": connections,
        "code": str(snapshot.code or ""),
    }
    of = f"of connection {connections} " if connections else ""
    episodes = Episodes.of(current)
    transitions = _while_held(
        episodes,
        subject,
        snapshot,
        Rule(AUTH_FAILED, "critical", snapshot.bc_id),
        failing,
        fire=(
            f"The TikTok API refuses the access token {of}for business center "
            f"{snapshot.bc_id} ({snapshot.code}): polling with it has stopped. Authorize again "
            "(creditwatch auth url / exchange) and set the new token for that connection."
        ),
        resolve=f"Polling of business center {snapshot.bc_id} {of}works again.",
        values=values,
    )
    transitions += _rate_limited(episodes, subject, snapshot, limited)
    recorded = replace(
        current,
        **{
            "status_at": {**current.status_at, key: snapshot.observed_at},
            "auth_failed": sorted(failing),
            "rate_limited": sorted(limited),
            **episodes.fields(),
        },
    )
    return Evaluation(recorded, transitions)


def _updated(keys: list[str], snapshot: SourceStatusSnapshot, status: str) -> set[str]:
    """The (source, connection) keys in ``status`` after this snapshot: its key added, or
    taken out (with a bare source recorded before statuses named their connection)."""
    now = set(keys)
    if snapshot.status == status:
        now.add(snapshot.status_key)
    elif snapshot.status == "ok":
        now -= {snapshot.status_key, snapshot.source}
    return now


def _named(keys: set[str], snapshot: SourceStatusSnapshot) -> tuple[str, str]:
    """The sources and the connections (comma-separated) that ``keys`` name."""
    sources = sorted({k.partition("@")[0] for k in keys}) or [snapshot.source]
    named = {k.partition("@")[2] for k in keys} or {snapshot.connection or ""}
    return ",".join(sources), ",".join(sorted(named - {""}))


def _rate_limited(
    episodes: Episodes, subject: Subject, snapshot: SourceStatusSnapshot, limited: set[str]
) -> list[AlertTransition]:
    sources, connections = _named(limited, snapshot)
    values: dict[str, Value] = {"sources": sources, "connection": connections}
    if snapshot.status == "rate_limited":
        values["code"] = str(snapshot.code or "")
        values["endpoint"] = snapshot.endpoint or ""
        if snapshot.until is not None:
            values["suspended_until"] = snapshot.until
    until = f" until {snapshot.until:%Y-%m-%d %H:%M:%S} UTC" if snapshot.until else ""
    return _while_held(
        episodes,
        subject,
        snapshot,
        Rule(RATE_LIMITED, "warning", snapshot.bc_id),
        limited,
        fire=(
            f"The TikTok API suspended {snapshot.endpoint or 'an endpoint'} for this app "
            f"({snapshot.code}): polling of business center {snapshot.bc_id} is paused{until} "
            "and resumes by itself. Lower the request rate (tiktok.tier / qps / qpm) or stop "
            "other users of the app."
        ),
        resolve=f"Polling of business center {snapshot.bc_id} is no longer rate limited.",
        values=values,
    )


def _while_held(
    episodes: Episodes,
    subject: Subject,
    snapshot: SourceStatusSnapshot,
    rule: Rule,
    held: set[str],
    *,
    fire: str,
    resolve: str,
    values: dict[str, Value],
) -> list[AlertTransition]:
    """The business center's episode of ``rule``: open while any (source, connection) key
    is ``held`` in that status, closed once none is."""
    return sync(
        episodes,
        subject,
        rule,
        snapshot.observed_at,
        firing=bool(held),
        clear=not held,
        fire=(fire, values),
        resolve=(resolve, values),
    )
