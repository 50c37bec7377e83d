"""The operator commands of notification: ``deliveries``, ``silence`` and ``receivers``.

They work on the state in Redis, so they act on a running service without talking to it: a
replayed delivery is due at once and the service's sender sends it; a silence applies to the
next transition routed.

Usage::

    creditwatch deliveries list --failed --limit 20
    creditwatch deliveries replay 'ops:al_3f6c...:firing'      # or --all-failed
    creditwatch silence add --match kind='credit.*' --match advertiser_id=71 --duration 2h \\
        --comment "top-up on its way" --author ana
    creditwatch silence list
    creditwatch silence expire sil_0a1b2c3d4e5f
    creditwatch receivers list                     # receivers enable NAME: after a 410
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TextIO

from redis.asyncio import Redis

from config.fields import check_glob, parse_duration
from config.notify import BUILTIN_LABELS
from config.settings import Settings
from service.deliver.clock import Clock, utc_now
from service.deliver.deliveries import Delivery, DeliveryStore
from service.deliver.digest_commands import DigestCommandError, add_digest_parser, run_digest
from service.deliver.disabled import DisabledReceivers
from service.deliver.silences import Silence, Silences, TooManySilences
from workers.contract.alerts import AlertTransition

__all__ = ["CommandError", "add_subcommands", "run_command"]

Publish = Callable[[AlertTransition], Awaitable[None]]


class CommandError(Exception):
    """A wrong argument (an unknown id, a bad matcher): printed as one line, exit 2."""


def add_subcommands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``deliveries``, ``silence`` and ``receivers`` subcommands."""
    deliveries = commands.add_parser("deliveries", help="delivery history and replay")
    what = deliveries.add_subparsers(dest="action", required=True)
    listing = what.add_parser("list", help="newest first, with every attempt")
    listing.add_argument("--failed", action="store_true", help="only failed (dead-lettered)")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true")
    replay = what.add_parser("replay", help="send again (the running service sends it)")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", help="a delivery id from `deliveries list`")
    target.add_argument("--all-failed", action="store_true")

    silence = commands.add_parser("silence", help="silence alerts for a while")
    what = silence.add_subparsers(dest="action", required=True)
    add = what.add_parser("add", help="a new silence")
    add.add_argument("--match", action="append", required=True, metavar="LABEL=GLOB")
    until = add.add_mutually_exclusive_group()
    until.add_argument("--duration", help="e.g. 2h, 30m, 3d (default: notify.silences)")
    until.add_argument("--until", help="an ISO 8601 time with its offset")
    add.add_argument("--starts", help="an ISO 8601 time with its offset (default: now)")
    add.add_argument("--comment", required=True)
    add.add_argument("--author", required=True)
    shown = what.add_parser("list", help="active and pending silences")
    shown.add_argument("--all", action="store_true", help="expired ones too")
    shown.add_argument("--json", action="store_true")
    expire = what.add_parser("expire", help="end a silence now")
    expire.add_argument("id")

    receivers = commands.add_parser("receivers", help="receivers and their state")
    what = receivers.add_subparsers(dest="action", required=True)
    what.add_parser("list", help="every receiver, disabled ones marked")
    enable = what.add_parser("enable", help="switch on a receiver disabled by a 410")
    enable.add_argument("name")
    add_digest_parser(commands)


async def run_command(
    args: argparse.Namespace,
    settings: Settings,
    redis: Redis,
    *,
    publish: Publish,
    out: TextIO,
    clock: Clock = utc_now,
) -> int:
    """Run one ``deliveries``/``silence``/``receivers`` action; raises CommandError."""
    streams = settings.streams
    if args.command == "deliveries":
        store = DeliveryStore(redis, streams, history=timedelta(days=settings.notify.history_days))
        if args.action == "list":
            rows = await store.history(limit=args.limit, failed_only=args.failed)
            _print_deliveries(rows, out, as_json=args.json)
            return 0
        ids = await store.failed_ids() if args.all_failed else [args.id]
        for delivery_id in ids:
            if await store.replay(delivery_id, clock()) is None:
                raise CommandError(f"no such delivery: {delivery_id}")
            print(f"queued again: {delivery_id}", file=out)
        if not ids:
            print("no failed deliveries", file=out)
        return 0
    if args.command == "silence":
        return await _silence(args, settings, Silences(redis, streams), out, clock)
    if args.command == "digest":
        try:
            return await run_digest(args, settings, redis, out=out, clock=clock)
        except DigestCommandError as error:
            raise CommandError(str(error)) from None
    disabled = DisabledReceivers(redis, streams)
    return await _receivers(args, settings, disabled, publish=publish, out=out, clock=clock)


def _print_deliveries(rows: Sequence[Delivery], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([d.model_dump(mode="json") for d in rows], indent=2), file=out)
        return
    table = [("CREATED", "STATUS", "RECEIVER", "TRIES", "ALERTS", "ID")]
    for d in rows:
        alerts = ", ".join(
            f"{t.kind} {t.status} {t.advertiser_id}".strip() for t in d.transitions[:3]
        ) + (f" +{len(d.transitions) - 3}" if len(d.transitions) > 3 else "")
        if d.digest is not None:
            alerts = d.digest.title
        status = d.status + (" (repeat)" if d.repeat else "")
        table.append((_when(d.created_at), status, d.receiver, str(len(d.attempts)), alerts, d.id))
    _print_table(table, out)
    for d in rows:
        if not d.attempts and not d.note:
            continue
        print(f"\n{d.id}", file=out)
        for a in d.attempts:
            code = str(a.status_code) if a.status_code is not None else "-"
            print(f"  {_when(a.at)}  {a.result:<9} {code:>4}  {a.error or ''}", file=out)
        if d.status == "pending" and d.next_attempt_at:
            print(f"  next attempt {_when(d.next_attempt_at)}", file=out)
        if d.note:
            print(f"  note: {d.note}", file=out)


def _parse_matchers(pairs: Sequence[str]) -> dict[str, str]:
    matchers: dict[str, str] = {}
    for pair in pairs:
        name, sep, glob = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--match {pair!r}: expected LABEL=GLOB, e.g. kind=credit.*")
        try:
            matchers[name.strip()] = check_glob(glob.strip())
        except ValueError as error:
            raise CommandError(f"--match {pair!r}: {error}") from None
    return matchers


def _time(text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{what}: not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise CommandError(f"{what}: give the offset, e.g. 2026-11-22T18:00:00+01:00")
    return when


async def _silence(
    args: argparse.Namespace, settings: Settings, silences: Silences, out: TextIO, clock: Clock
) -> int:
    now = clock()
    if args.action == "add":
        matchers = _parse_matchers(args.match)
        known = BUILTIN_LABELS | {k for v in settings.notify.account_labels.values() for k in v}
        unknown = sorted(set(matchers) - known)
        if unknown:
            raise CommandError(f"--match: unknown label {unknown[0]!r}")
        starts = _time(args.starts, "--starts") if args.starts else now
        if args.until:
            ends = _time(args.until, "--until")
        else:
            try:
                length = parse_duration(args.duration or settings.notify.silences.duration)
            except ValueError as error:
                raise CommandError(f"--duration: {error}") from None
            ends = starts + length
        if ends - starts > settings.notify.silences.max_duration:
            raise CommandError("the silence is longer than notify.silences.max_duration")
        try:
            silence = await silences.add(
                matchers,
                starts_at=starts,
                ends_at=ends,
                comment=args.comment,
                author=args.author,
                now=now,
                limit=settings.notify.silences.max_active,
            )
        except TooManySilences as error:
            raise CommandError(f"{error} (notify.silences.max_active): expire one first") from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        print(f"{silence.id} until {_when(silence.ends_at)}", file=out)
        return 0
    if args.action == "expire":
        expired = await silences.expire(args.id, now)
        if expired is None:
            raise CommandError(f"no such silence: {args.id}")
        print(f"{expired.id} expired", file=out)
        return 0
    rows = [s for s in await silences.all() if args.all or s.state(now) != "expired"]
    _print_silences(rows, now, out, as_json=args.json)
    return 0


def _print_silences(rows: Sequence[Silence], now: datetime, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in rows], indent=2), file=out)
        return
    table = [("ID", "STATE", "STARTS", "ENDS", "MATCHERS", "AUTHOR", "COMMENT")]
    table.extend(
        (
            s.id,
            s.state(now),
            _when(s.starts_at),
            _when(s.ends_at),
            " ".join(f"{k}={v}" for k, v in s.matchers.items()),
            s.author,
            s.comment,
        )
        for s in rows
    )
    _print_table(table, out)


async def _receivers(
    args: argparse.Namespace,
    settings: Settings,
    disabled: DisabledReceivers,
    *,
    publish: Publish,
    out: TextIO,
    clock: Clock,
) -> int:
    names = [r.name for r in settings.notify.all_receivers()]
    if args.action == "list":
        table = [("NAME", "TYPE", "STATE")]
        for receiver in settings.notify.all_receivers():
            state = "disabled (410)" if await disabled.is_disabled(receiver.name) else "enabled"
            table.append((receiver.name, receiver.type, state))
        _print_table(table, out)
        return 0
    if args.name not in names:
        raise CommandError(f"no such receiver: {args.name} (known: {', '.join(names)})")
    alert = await disabled.enable(args.name)
    if alert is None:
        print(f"{args.name} was not disabled", file=out)
        return 0
    # Resolve the ops alert that announced it, so whoever was told hears it is fixed.
    resolved = alert.model_copy(
        update={
            "status": "resolved",
            "ends_at": clock(),
            "observed_at": clock(),
            "summary": f"Receiver {args.name} was enabled again.",
        }
    )
    await publish(resolved)
    print(f"{args.name} enabled", file=out)
    return 0


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)
