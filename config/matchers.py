"""Alertmanager's matcher strings (``kind="credit.low"``, ``kind=~"credit\\..*"``, ``team!=x``).

Inhibit rules accept them (``source_matchers``, ``target_matchers``) besides the ``label: glob``
form, so rules copied from an Alertmanager configuration work. The four operators are ``=``,
``!=``, ``=~`` and ``!~``; a regex must match the whole value (Alertmanager anchors it); a
missing label is the empty string. In a quoted value ``\"`` is a quote and ``\\`` a backslash;
any other backslash is kept for the regex.

Usage::

    matcher = parse_matcher('kind=~"credit\\.(low|depletion_forecast)"')
    matcher.matches({"kind": "credit.low"})      # True
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Matcher", "parse_matcher"]

_FORM = re.compile(
    r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$'
)


class Matcher(BaseModel):
    """One ``label op value`` condition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(f"(?:{self.value})")

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found


def parse_matcher(text: Any) -> Any:
    """A matcher string -> a Matcher; anything that is not a string is left to validation."""
    if not isinstance(text, str):
        return text
    found = _FORM.match(text)
    if found is None:
        example = 'kind="credit.low" or kind=~"credit\\..*"'
        raise ValueError(f"not a matcher: {text!r} (write e.g. {example})")
    name, op, quoted, bare = found.groups()
    # In quotes, \" and \\ stand for themselves; any other backslash is the regex's.
    value = re.sub(r'\\([\\"])', r"\1", quoted) if quoted is not None else bare
    if op in {"=~", "!~"}:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"matcher {text!r}: bad regex: {error}") from None
    return Matcher(name=name, op=op, value=value)
