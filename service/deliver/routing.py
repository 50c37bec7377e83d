"""Routing: which receivers an alert transition goes to, and the group it joins there.

Alertmanager's model. An alert's *labels* are its kind, severity, status, advertiser_id,
advertiser_name, bc_id and alert_id, plus the labels declared for its account (by
advertiser_id or bc_id) in ``notify.account_labels``. Each route tree is walked from its root:
children are tried in order, the first that matches takes the alert unless it has
``continue: true``; a node none of whose children match takes it itself. Settings a node
leaves unset come from its parent, and at the root from ``notify``.

Usage::

    router = Router(settings.notify)
    for target in router.targets(transition):
        target.receiver, target.group_key(router.labels(transition))
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from datetime import timedelta

from config.notify import NotifySettings, Route
from workers.contract.alerts import AlertTransition

__all__ = ["RouteTarget", "Router", "matches"]


@dataclass(frozen=True)
class RouteTarget:
    """A matched route node with everything it inherited: where and how to notify."""

    receiver: str
    path: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    mute_time_intervals: tuple[str, ...]

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if "..." in self.group_by:  # every alert is a group of its own
            return {"alert_id": labels["alert_id"]}
        return {name: labels.get(name, "") for name in self.group_by}

    def group_id(self, labels: dict[str, str]) -> str:
        """Stable for (receiver, route, group labels): the name of the group in Redis."""
        grouped = sorted(self.group_labels(labels).items())
        seed = "|".join([self.receiver, self.path, *(f"{k}={v}" for k, v in grouped)])
        return hashlib.sha256(seed.encode()).hexdigest()[:24]


def matches(match: dict[str, list[str]], labels: dict[str, str]) -> bool:
    """Every matcher's label matches one of its globs (a missing label is the empty string)."""
    return all(
        any(fnmatch.fnmatchcase(labels.get(name, ""), glob) for glob in globs)
        for name, globs in match.items()
    )


class Router:
    def __init__(self, notify: NotifySettings) -> None:
        self._notify = notify
        self._trees = notify.routes()
        self._defaults = RouteTarget(
            receiver="",
            path="",
            group_by=tuple(notify.group_by),
            group_wait=notify.group_wait,
            group_interval=notify.group_interval,
            repeat_interval=notify.repeat_interval,
            mute_time_intervals=(),
        )

    def labels(self, transition: AlertTransition) -> dict[str, str]:
        labels = {
            "kind": transition.kind,
            "severity": transition.severity,
            "status": transition.status,
            "advertiser_id": transition.advertiser_id,
            "advertiser_name": transition.advertiser_name,
            "bc_id": transition.bc_id,
            "alert_id": transition.alert_id,
        }
        accounts = self._notify.account_labels
        # Business-center labels first, so an advertiser's own labels win.
        for owner in (transition.bc_id, transition.advertiser_id):
            labels.update(accounts.get(owner, {}))
        return labels

    def targets(self, transition: AlertTransition) -> list[RouteTarget]:
        """The receivers this transition goes to: once each, the first matching route wins."""
        labels = self.labels(transition)
        found: dict[str, RouteTarget] = {}
        for index, tree in enumerate(self._trees):
            root = self._resolve(tree, None, f"{index}")
            if not matches(tree.match, labels):
                continue
            for target in self._walk(tree, root, labels):
                found.setdefault(target.receiver, target)
        return list(found.values())

    def _walk(
        self, node: Route, resolved: RouteTarget | None, labels: dict[str, str]
    ) -> list[RouteTarget]:
        out: list[RouteTarget] = []
        path = resolved.path if resolved else ""
        for index, child in enumerate(node.routes):
            if not matches(child.match, labels):
                continue
            out.extend(self._walk(child, self._resolve(child, resolved, f"{path}.{index}"), labels))
            if not child.continue_:
                break
        if not out and resolved is not None and resolved.receiver:
            out.append(resolved)
        return out

    def _resolve(self, node: Route, parent: RouteTarget | None, path: str) -> RouteTarget:
        base = parent or self._defaults
        return RouteTarget(
            receiver=node.receiver or base.receiver,
            path=path,
            group_by=tuple(node.group_by) if node.group_by is not None else base.group_by,
            group_wait=_own(node.group_wait, base.group_wait),
            group_interval=_own(node.group_interval, base.group_interval),
            repeat_interval=_own(node.repeat_interval, base.repeat_interval),
            mute_time_intervals=(
                tuple(node.mute_time_intervals)
                if node.mute_time_intervals is not None
                else base.mute_time_intervals
            ),
        )


def _own(value: timedelta | None, inherited: timedelta) -> timedelta:
    return value if value is not None else inherited
