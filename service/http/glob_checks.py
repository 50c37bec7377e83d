"""Glob fields of API requests: each one bounded in length and well formed for ``fnmatch``.

Silence matchers and subscription kinds are both globs a client sends; the length bound keeps
a pathological pattern out of the matching that every alert goes through.

Usage::

    check_globs(request.kinds, longest=128, what="a kind glob")   # ValueError: the first bad one
"""

from __future__ import annotations

from collections.abc import Iterable

from config.fields import check_glob

__all__ = ["check_globs"]


def check_globs(globs: Iterable[str], *, longest: int, what: str) -> None:
    for glob in globs:
        if len(glob) > longest:
            raise ValueError(f"{what} is at most {longest} characters")
        check_glob(glob)
