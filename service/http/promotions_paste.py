"""Credits pasted from the Ads Manager Promotions page (Available tab), one per line.

Copying that table gives tab-separated rows: name, type (Free / Assignable / Conditional /
...), amount (with or without a currency sign and thousands separators), the valid dates (one
cell "2026-11-01 ~ 2026-11-30" or two cells), then used / unused / percent, which are the
page's own estimates and are ignored (the detectors make theirs). A header row and blank lines
are skipped. Each row becomes a ``config.ledger.Credit`` of the given advertiser and currency,
validated exactly as the YAML is; its id is made from the name and the start date
(``welcome-offer-20261101``), so pasting the same rows again replaces them rather than
adding them twice. Times on the page without a zone are taken as UTC.

Usage::

    rows = parse_promotions(text, advertiser_id="7100000000001", currency="USD")
    for row in rows: row.credit or row.errors      # errors: [(field, message)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from config.ledger import Credit

__all__ = ["PastedRow", "parse_promotions"]

_TYPES = {
    "free": "free",
    "assignable": "assignable",
    "conditional": "conditional",
    "ladder": "ladder_reward",
    "ladder reward": "ladder_reward",
    "ladder_reward": "ladder_reward",
}
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}/\d{1,2}/\d{4}"
    r"|[A-Z][a-z]{2,8}\.? \d{1,2},? \d{4}"
)
_DATE_FORMATS = ("%m/%d/%Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y")
_ID_LENGTH = 64


@dataclass
class PastedRow:
    line: int  # 1-based line of the pasted text
    id: str
    credit: Credit | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


def _date(text: str) -> str:
    """An ISO date (a plain date keeps its whole-day meaning) or an ISO datetime in UTC."""
    text = text.replace("/", "-").replace(".", "-") if text[:4].isdigit() else text
    if text[:4].isdigit():
        day, _, clock = text.partition(" ") if " " in text else text.partition("T")
        y, m, d = (int(part) for part in day.split("-"))
        iso = f"{y:04d}-{m:02d}-{d:02d}"
        return f"{iso}T{clock}+00:00" if clock else iso
    for pattern in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text.replace(".", ""), pattern).replace(tzinfo=UTC)
            return parsed.date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def _amount(text: str) -> str:
    cleaned = re.sub(r"[^\d.\-]", "", text.replace(",", ""))
    return cleaned or text.strip()


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-") or "credit"


def _field_of(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]) if loc else "row"


def _parse_row(cells: list[str], advertiser_id: str, currency: str) -> dict[str, Any]:
    name, kind, amount, *rest = [*cells, "", "", ""][: max(len(cells), 3)]
    dates = _DATE.findall("\t".join(rest))
    if len(dates) < 2:
        raise _RowError("valid_to" if dates else "valid_from", "two valid dates are needed")
    valid_from, valid_to = _date(dates[0]), _date(dates[1])
    return {
        "id": f"{_slug(name)[: _ID_LENGTH - 9]}-{valid_from[:10].replace('-', '')}",
        "advertiser_id": advertiser_id,
        "name": name.strip(),
        "type": _TYPES.get(kind.strip().lower(), kind.strip().lower()),
        "amount": _amount(amount),
        "currency": currency,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }


class _RowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_promotions(text: str, *, advertiser_id: str, currency: str) -> list[PastedRow]:
    rows: list[PastedRow] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        cells = [cell.strip() for cell in line.split("\t")]
        if not any(cells) or cells[0].lower() in {"name", "promotion name", "credit name"}:
            continue
        try:
            data = _parse_row(cells, advertiser_id, currency)
        except _RowError as error:
            rows.append(PastedRow(number, "", errors=[(error.field, str(error))]))
            continue
        except ValueError as error:
            rows.append(PastedRow(number, "", errors=[("valid_from", str(error))]))
            continue
        row = PastedRow(number, data["id"])
        if row.id in seen:
            row.errors.append(("name", f"a second row would be {row.id}: same name and start"))
        seen.add(row.id)
        try:
            row.credit = Credit.model_validate(data)
        except ValidationError as error:
            row.errors.extend((_field_of(e["loc"]), e["msg"]) for e in error.errors())
        rows.append(row)
    return rows
