"""Alert episodes: opening, closing and one-shot notifications, shared by every rule.

An episode is keyed in ``state.open`` by ``Rule.key`` (the kind, plus what it is about when
an account can have several at once: ``credit.expiring|c1|7d``). Its ``alert_id`` is
derived from that key and its start, so replicas that see the same episode name it alike.
One-shot kinds (``credit.issued``, ``credit.expired``, ``ladder.tier_reached``) describe an
event, not a condition: they are sent once as ``firing`` and have nothing to resolve.

Usage::

    rule = Rule("credit.frozen", "warning")
    transitions = sync(state.open, subject, rule, now, firing=frozen > 0, clear=frozen == 0,
                       fire=("Credit frozen ...", values), resolve=("Hold lifted ...", values))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from msgspec.structs import replace

from service.detect.state import AccountState, CenterState, OpenEpisode
from workers.contract import wire
from workers.contract.alerts import AlertTransition, Severity, Status, episode_id

__all__ = [
    "Episodes",
    "Message",
    "Messages",
    "Rule",
    "Subject",
    "Value",
    "close",
    "flag_text",
    "notify_once",
    "open_",
    "subject_of",
    "sync",
    "sync_state",
    "who",
]

Value = Decimal | datetime | str | int
# What an alert says: its summary and its values.
Message = tuple[str, Mapping[str, Value]]
# What a one-episode rule says when it fires and when it resolves, and the values of both.
Messages = tuple[str, str, Mapping[str, Value]]

# How long a close time is kept to stop a same-instant restart; API time never goes back
# that far for a state, so older ones can no longer matter.
_CLOSED_KEPT = timedelta(days=2)

StateT = TypeVar("StateT", AccountState, CenterState)

# Accounts seen only through a business-center-wide snapshot have no currency of their own.
NO_CURRENCY = "XXX"


@dataclass(frozen=True)
class Subject:
    """Whom an alert is about."""

    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str


@dataclass(frozen=True)
class Rule:
    """An alert kind; ``about`` tells episodes of one kind on one account apart."""

    kind: str
    severity: Severity
    about: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.about}" if self.about else self.kind


@dataclass
class Episodes:
    """The open episodes of a state, and when recently closed ones ended.

    An episode that ended at ``t`` cannot restart at ``t``: a condition that flickers within
    one instant of API time (facts arriving out of order) is one episode, and a restart would
    reuse its ``alert_id`` (which is derived from the start).
    """

    open: dict[str, OpenEpisode]
    closed: dict[str, datetime]
    # Set by ``open_`` and ``close``: most snapshots change no episode, and skipping the
    # copy of an unchanged state is a large share of the detectors' time.
    changed: bool = False

    @classmethod
    def of(cls, state: AccountState | CenterState) -> Episodes:
        return cls(open=dict(state.open), closed=dict(state.closed))

    def updated(self, state: StateT, **fields: Any) -> StateT:
        """``state`` with these episodes and ``fields`` in it; ``state`` itself if unchanged."""
        if not self.changed and all(getattr(state, k) == v for k, v in fields.items()):
            return state
        return replace(state, **{**fields, **self.fields()})

    def __contains__(self, key: object) -> bool:
        return key in self.open

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.open))

    def may_open(self, key: str, now: datetime) -> bool:
        ended = self.closed.get(key)
        return ended is None or now > ended

    def fields(self) -> dict[str, Any]:
        """The state fields to write back; close times that can no longer matter are dropped."""
        newest = max(self.closed.values(), default=None)
        keep = {
            k: t for k, t in self.closed.items() if newest is None or newest - t <= _CLOSED_KEPT
        }
        return {"open": self.open, "closed": keep}


def subject_of(state: AccountState) -> Subject:
    profile = state.profile
    if profile is None:
        return Subject(state.advertiser_id, "", "", NO_CURRENCY)
    return Subject(state.advertiser_id, profile.advertiser_name, profile.bc_id, profile.currency)


def flag_text(flag: bool | None) -> str:
    """A yes/no fact of the API as an alert value: ``"true"``, ``"false"``, ``""`` if unknown."""
    return "" if flag is None else str(flag).lower()


def who(subject: Subject) -> str:
    name = subject.advertiser_name or "advertiser"
    return f"{name} ({subject.advertiser_id})"


def _text(value: Value) -> str:
    if isinstance(value, Decimal):
        return wire.money_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _transition(
    subject: Subject,
    rule: Rule,
    status: Status,
    *,
    starts_at: datetime,
    now: datetime,
    message: Message,
) -> AlertTransition:
    summary, values = message
    scope = f"{subject.advertiser_id}|{rule.about}" if rule.about else subject.advertiser_id
    return AlertTransition(
        alert_id=episode_id(rule.kind, scope, starts_at),
        kind=rule.kind,
        status=status,
        severity=rule.severity,
        advertiser_id=subject.advertiser_id,
        advertiser_name=subject.advertiser_name,
        bc_id=subject.bc_id,
        currency=subject.currency,
        summary=summary,
        values={name: _text(value) for name, value in values.items()},
        starts_at=starts_at,
        ends_at=now if status == "resolved" else None,
        observed_at=now,
    )


def open_(
    episodes: Episodes, subject: Subject, rule: Rule, now: datetime, message: Message
) -> list[AlertTransition]:
    """Start an episode of ``rule`` at ``now``; returns its firing transition (none if one of
    the same rule ended at this very instant)."""
    if not episodes.may_open(rule.key, now):
        return []
    transition = _transition(subject, rule, "firing", starts_at=now, now=now, message=message)
    episodes.open[rule.key] = OpenEpisode(alert_id=transition.alert_id, starts_at=now)
    episodes.changed = True
    return [transition]


def close(
    episodes: Episodes, subject: Subject, rule: Rule, now: datetime, message: Message
) -> AlertTransition:
    """End the open episode of ``rule``; returns its resolved transition (same alert_id)."""
    episode = episodes.open.pop(rule.key)
    episodes.closed[rule.key] = now
    episodes.changed = True
    return _transition(
        subject, rule, "resolved", starts_at=episode.starts_at, now=now, message=message
    )


def sync(
    episodes: Episodes,
    subject: Subject,
    rule: Rule,
    now: datetime,
    *,
    firing: bool,
    clear: bool,
    fire: Message,
    resolve: Message,
) -> list[AlertTransition]:
    """Open when ``firing`` and not open; close when ``clear`` and open (hysteresis lives in
    the gap between the two conditions)."""
    if not _due(episodes.open, rule, firing=firing, clear=clear):
        return []
    if rule.key in episodes:
        return [close(episodes, subject, rule, now, resolve)]
    return open_(episodes, subject, rule, now, fire)


def sync_state(
    state: AccountState,
    rule: Rule,
    now: datetime,
    *,
    firing: bool,
    clear: bool,
    say: Callable[[Subject], Messages],
) -> tuple[AccountState, list[AlertTransition]]:
    """``sync`` on the episodes of ``state``, for a rule that keeps nothing else in it: the
    state with them written back (``state`` itself if unchanged) and the transitions.

    ``say`` is asked for the messages only when the episode opens or closes: most snapshots
    change nothing, and building them is most of such a rule's work."""
    if not _due(state.open, rule, firing=firing, clear=clear):
        return state, []
    subject = subject_of(state)
    fire, resolve, values = say(subject)
    episodes = Episodes.of(state)
    transitions = sync(
        episodes,
        subject,
        rule,
        now,
        firing=firing,
        clear=clear,
        fire=(fire, values),
        resolve=(resolve, values),
    )
    return episodes.updated(state), transitions


def _due(
    open_episodes: Mapping[str, OpenEpisode], rule: Rule, *, firing: bool, clear: bool
) -> bool:
    """Whether ``sync`` would open or close anything (``sync_state`` asks before it has the
    messages built, as most snapshots change nothing)."""
    return (rule.key in open_episodes and clear) or (rule.key not in open_episodes and firing)


def notify_once(
    notified: list[str], subject: Subject, rule: Rule, at: datetime, message: Message
) -> list[AlertTransition]:
    """A one-shot notification of an event, at most once per ``rule.key``."""
    if rule.key in notified:
        return []
    notified.append(rule.key)
    return [_transition(subject, rule, "firing", starts_at=at, now=at, message=message)]
