"""Ledger dates are bounded to the years 2000..2100, in the YAML and on the HTTP API alike.

Outside that range a typo (year 1, 9999) used to be accepted and then overflow in the rules'
date arithmetic on every snapshot, or overflow at once (``valid_to: 9999-12-31`` + one day)
into a 500. Now it is refused up front: a 422 naming the field, or exit 2 naming the setting.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from config.ledger import Credit, LadderProgram
from tests.support.api import AUTH
from tests.support.api_account import CREDIT, PROGRAM

BAD_DATES = ["9999-12-31", "0001-01-01", "1999-12-31", "2101-01-01", "9999-12-31T23:59:59-12:00"]


@pytest.mark.parametrize("value", BAD_DATES)
@pytest.mark.parametrize(
    ("path", "entry", "names"),
    [
        ("/v1/credits", CREDIT, ("valid_from", "valid_to")),
        ("/v1/ladder-programs", PROGRAM, ("window_start", "window_end")),
    ],
    ids=["credit", "ladder-window"],
)
async def test_a_ledger_date_out_of_range_is_a_422_naming_it(
    http: httpx.AsyncClient, path: str, entry: dict[str, Any], names: tuple[str, str], value: str
) -> None:
    for name in names:
        answer = await http.post(path, json={**entry, name: value}, headers=AUTH)
        assert answer.status_code == 422
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", name]
        assert "2000..2100" in error["msg"]


def test_the_range_ends_are_accepted() -> None:
    credit = Credit.model_validate({**CREDIT, "valid_from": "2000-01-01", "valid_to": "2100-12-31"})
    assert (credit.valid_from.year, credit.valid_to.year) == (2000, 2101)  # the day's end
    program: dict[str, Any] = {**PROGRAM, "window_start": "2000-01-01", "window_end": "2100-12-31"}
    assert LadderProgram.model_validate(program).window_end.year == 2101


def test_the_config_names_the_entry() -> None:
    with pytest.raises(ValidationError) as raised:
        Credit.model_validate({**CREDIT, "valid_to": "9999-12-31"})
    assert raised.value.errors()[0]["loc"] == ("valid_to",)
