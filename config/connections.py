"""TikTok connections: one access token each, and the Business Centers polled with it.

An agency holds several tokens (one per authorizing user or client): ``tiktok.connections``
lists them; ``CREDITWATCH_TIKTOK__ACCESS_TOKEN`` / ``__BC_IDS`` stay the shorthand for one
connection named ``default``. ``bc_ids`` may be ``discover``: the Business Centers the token
reaches (``/bc/get/``) are polled.

Usage::

    ConnectionSettings(name="agency-a", access_token=SecretStr("…"), bc_ids="discover")
    check_connections(connections, shorthand=False, shorthand_names="…")   # ValueError
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)
from pydantic_settings import NoDecode

from config.fields import APP_ID_PATTERN, TIKTOK_ID, Name
from config.text_list import split_list

__all__ = [
    "DEFAULT_CONNECTION",
    "DISCOVER",
    "BcIds",
    "BcIdsSetting",
    "ConnectionSettings",
    "check_bc_ids",
    "check_connections",
    "parse_bc_ids",
]

# ``bc_ids: discover``: the Business Centers come from ``/bc/get/`` (what the token reaches).
DISCOVER = "discover"
# The name of the one connection the ACCESS_TOKEN / BC_IDS shorthand describes.
DEFAULT_CONNECTION = "default"

BcIds = list[str] | Literal["discover"]


def check_bc_ids(value: BcIds) -> BcIds:
    """Business center ids, or ``discover``; refuses anything that is not an id."""
    if value == DISCOVER:
        return value
    for bc_id in value:
        if not re.fullmatch(TIKTOK_ID, bc_id):
            raise ValueError(f"not a business center id: {bc_id!r}")
    return value


def parse_bc_ids(value: Any) -> Any:
    """``discover`` as it is; ``a,b`` or a JSON list (text from the environment) as a list."""
    if isinstance(value, str) and value.strip() == DISCOVER:
        return DISCOVER
    return split_list(value)


# A ``bc_ids`` setting: text from the environment is parsed before the type is checked.
BcIdsSetting = Annotated[
    BcIds, NoDecode, BeforeValidator(parse_bc_ids), AfterValidator(check_bc_ids)
]


class ConnectionSettings(BaseModel):
    """One access token and the Business Centers polled with it.

    ``app_id`` is the developer app that issued the token (default ``tiktok.app_id``):
    connections of one app share that app's rate budget.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A name like a receiver's: it goes into Redis keys and job ids.
    name: Name
    access_token: SecretStr
    app_id: str = Field(default="", pattern=APP_ID_PATTERN)
    bc_ids: BcIdsSetting

    @field_validator("bc_ids")
    @classmethod
    def _ids(cls, value: BcIds) -> BcIds:
        if not value:
            raise ValueError(f"at least one business center id, or {DISCOVER!r}")
        return value

    @field_validator("access_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("required")
        return value

    @property
    def discovers(self) -> bool:
        return self.bc_ids == DISCOVER


def check_connections(
    connections: list[ConnectionSettings], *, shorthand: bool, shorthand_names: str
) -> list[ConnectionSettings]:
    """Refuse the list together with the one-connection shorthand, and a name used twice."""
    if connections and shorthand:
        raise ValueError(
            f"cannot be combined with {shorthand_names} (the one-connection shorthand): "
            "use one form"
        )
    names = [connection.name for connection in connections]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"connection name {name!r} is used twice")
    return connections
