"""A rule that raises is skipped for that account, counted, dead-lettered once and reported.

One bad input (a ledger entry, a state no release foresaw) must not stop detection for an
advertiser: ``RuleRun`` runs each rule on its own, and a rule that raises leaves the state as
it found it and emits nothing, while the other rules go on and the snapshot is acknowledged.
``RuleHealth`` keeps the failing (rule, account) pairs in one Redis hash,
``<prefix>:rule_failures``: a pair is dead-lettered (with the snapshot that made it raise)
and logged when it starts failing or fails for a new cause, not on every snapshot; it is
removed when the rule runs clean again. ``/readyz`` reports what is failing
(``failing_rules``), and ``creditwatch_rule_errors_total{rule}`` counts every raise.

Usage::

    run = RuleRun()
    outcome = run.apply(
        "ladder", ladder.evaluate, state, snapshot=snapshot, ledger=ledger, settings=settings
    )
    if outcome is not None:                      # None: it raised, and run recorded that
        state, emitted = outcome
        run.ran_clean(state.advertiser_id, ["ladder"])
    await health.record(run)                     # after the batch is committed
    reasons = await failing_rules(redis, streams)   # ["rule ladder failing for 1 account(s)"]
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import structlog
from redis.asyncio import Redis

from config.redis_text import decoded
from config.settings import DetectSettings, StreamSettings
from service import metrics
from service.deadletter import DeadLetters
from service.detect.facts import AccountSnapshot
from service.detect.ledger import AccountLedger
from service.detect.state import AccountState
from workers.contract.alerts import AlertTransition

__all__ = ["AccountRule", "RuleFailure", "RuleHealth", "RuleRun", "S", "failing_rules"]

log = structlog.get_logger(__name__)

# The kind of snapshot a rule reads.
S = TypeVar("S", bound=AccountSnapshot)
# A rule that reads snapshots of kind ``S`` (see ``evaluate.RULES``).
AccountRule = Callable[
    [AccountState, S, AccountLedger, DetectSettings],
    tuple[AccountState, list[AlertTransition]],
]

# How long a replica trusts its copy of which pairs are failing before reading it again: a
# pair another replica recorded is cleared at most this long after it runs clean here.
_REFRESH_S = 5.0


@dataclass(frozen=True)
class RuleFailure:
    """One rule raising for one account: ``cause`` (type and place) is stable across
    snapshots, so a rule failing the same way on every snapshot is one failure."""

    rule: str
    advertiser_id: str
    cause: str
    error: str
    payload: bytes

    @property
    def field(self) -> str:
        return _pair(self.rule, self.advertiser_id)


def _pair(rule: str, advertiser_id: str) -> str:
    """A (rule, account) pair as the failures hash keys it: ``rule:advertiser``."""
    return f"{rule}:{advertiser_id}"


def _split(pair: str) -> tuple[str, str]:
    """``_pair``'s (rule, account) back from its key."""
    rule, _, advertiser_id = pair.partition(":")
    return rule, advertiser_id


def _cause(error: Exception) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}{where}"


@dataclass
class RuleRun:
    """The rules' outcomes over one batch: the last failure of each (rule, account) pair
    that failed, and per account the rules whose last run on it was clean."""

    failed: dict[str, RuleFailure] = field(default_factory=dict)
    clean: dict[str, set[str]] = field(default_factory=dict)

    def apply(
        self,
        name: str,
        rule: AccountRule[S],
        state: AccountState,
        *,
        snapshot: S,
        ledger: AccountLedger,
        settings: DetectSettings,
    ) -> tuple[AccountState, list[AlertTransition]] | None:
        """The rule's result, or None if it raised (the failure is recorded here)."""
        try:
            return rule(state, snapshot, ledger, settings)
        except Exception as error:  # any bug or bad input in one rule: contain it
            metrics.RULE_ERRORS.labels(rule=name).inc()
            self.clean.get(state.advertiser_id, set()).discard(name)
            failure = RuleFailure(
                rule=name,
                advertiser_id=state.advertiser_id,
                cause=_cause(error),
                error="".join(traceback.format_exception(error)),
                payload=snapshot.to_json(),
            )
            self.failed[failure.field] = failure
            return None

    def ran_clean(self, advertiser_id: str, names: list[str]) -> None:
        """Note that ``names`` ran clean on the account: once per snapshot, not per rule
        (the batch's every snapshot runs ten rules; the bookkeeping was a tenth of them)."""
        self.clean.setdefault(advertiser_id, set()).update(names)
        if self.failed:  # nearly always empty: spare the lookups
            for name in names:
                self.failed.pop(_pair(name, advertiser_id), None)

    def passed(self, pair: str) -> bool:
        """Whether the last run of this pair (as ``_pair`` writes it) in the batch was clean."""
        name, advertiser_id = _split(pair)
        return name in self.clean.get(advertiser_id, ())


class RuleHealth:
    """The failing (rule, account) pairs, kept in Redis so that every replica dedupes alike."""

    def __init__(self, redis: Redis, streams: StreamSettings, dead_letters: DeadLetters) -> None:
        self._redis = redis
        self._key = streams.keyspace.rule_failures()
        self._dead_letters = dead_letters
        self._known: set[str] = set()
        self._read_at = float("-inf")

    async def record(self, run: RuleRun) -> None:
        """Dead-letter and log the pairs that newly fail; clear the ones that recovered."""
        await self._refresh()
        if run.failed:
            await self._failed(list(run.failed.values()))
        recovered = [pair for pair in self._known if run.passed(pair)]
        if recovered:
            await self._redis.hdel(self._key, *recovered)
            self._known.difference_update(recovered)
            for pair in recovered:
                log.info("rule.recovered", pair=pair)

    async def _refresh(self) -> None:
        if time.monotonic() - self._read_at < _REFRESH_S:
            return
        self._known = set(await _pairs(self._redis, self._key))
        self._read_at = time.monotonic()

    async def _failed(self, failures: list[RuleFailure]) -> None:
        priors = await self._redis.hmget(self._key, [f.field for f in failures])
        for failure, prior in zip(failures, priors, strict=True):
            self._known.add(failure.field)
            if prior is not None and json.loads(prior)["cause"] == failure.cause:
                continue
            record = json.dumps({"cause": failure.cause, "since": datetime.now(UTC).isoformat()})
            if prior is None:
                # Another replica may be recording the same pair right now: one of us wins.
                if not await self._redis.hsetnx(self._key, failure.field, record):
                    continue
            else:
                await self._redis.hset(self._key, failure.field, record)
            log.error(
                "rule.failed",
                rule=failure.rule,
                advertiser_id=failure.advertiser_id,
                cause=failure.cause,
                error=failure.error[-2000:],
            )
            await self._dead_letters.put(
                source="rules",
                reason=f"rule {failure.rule} raised",
                payload=failure.payload,
                error=f"{failure.cause} for advertiser {failure.advertiser_id}\n{failure.error}",
            )


async def failing_rules(redis: Redis, streams: StreamSettings) -> list[str]:
    """``["rule ladder failing for 2 account(s)"]``: for ``/readyz``."""
    pairs = await _pairs(redis, streams.keyspace.rule_failures())
    per_rule = Counter(_split(pair)[0] for pair in pairs)
    return [f"rule {rule} failing for {n} account(s)" for rule, n in sorted(per_rule.items())]


async def _pairs(redis: Redis, key: str) -> list[str]:
    return [decoded(f) for f in await redis.hkeys(key)]
