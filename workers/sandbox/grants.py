"""Who may call the sandbox: the developer app, its access tokens, what each reaches, auth codes.

A scenario may list several tokens, each reaching its own Business Centers with the user's
role there (``user_role`` ADMIN|STANDARD, ``finance_role`` MANAGER|ANALYST or none). The
scenario's ``access_token`` reaches every Business Center as ADMIN and Finance Manager unless
it is listed. Payment endpoints need a Finance role in the Business Center asked about
(else 40001, as on the real API); a Business Center the token does not reach is 40001 too.
Auth codes are single use and expire an hour of *simulated* time after they are issued; a
revoked token answers 40105 everywhere. Shape in the scenario::

    app: {app_id: "7300000000001", secret: sandbox-secret}
    tokens:
      - token: agency-a-token
        business_centers:
          - {bc_id: "7000000000001", user_role: ADMIN, finance_role: ANALYST}
          - {bc_id: "7000000000002", user_role: STANDARD}      # no Finance role: 40001

Usage::

    grants = Grants(scenario, bc_ids=[...])
    grants.admit(token)                          # ApiError 40105 unless known and not revoked
    grants.authorize(token, "/bc/balance/get/", bc_id)     # ApiError 40001
    code = grants.issue_code(now)                # a new token reaching every BC, on exchange
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from config.fields import TikTokId

from .envelope import BAD_PARAMETER, BAD_TOKEN, NO_PERMISSION, ApiError

__all__ = [
    "AUTH_CODE_TTL",
    "PAYMENT_PATHS",
    "AppSpec",
    "Grants",
    "Reach",
    "TokenSpec",
]

AUTH_CODE_TTL = timedelta(hours=1)
# The endpoints that need Finance Manager or Finance Analyst in the Business Center.
PAYMENT_PATHS = frozenset(
    {
        "/advertiser/balance/get/",
        "/bc/balance/get/",
        "/bc/account/cost/get/",
        "/bc/account/transaction/get/",
    }
)
_REVOKED = "Access token is incorrect or has been revoked."

_BcId = TikTokId


class AppSpec(BaseModel):
    """The developer app whose id and secret the OAuth endpoints check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = Field(default="7300000000001", min_length=1, max_length=64)
    secret: str = Field(default="sandbox-secret", min_length=1, max_length=512)


class Reach(BaseModel):
    """One Business Center a token reaches, and the user's roles in it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bc_id: _BcId
    user_role: Literal["ADMIN", "STANDARD"] = "ADMIN"
    finance_role: Literal["MANAGER", "ANALYST"] | None = "MANAGER"


class TokenSpec(BaseModel):
    """An access token of the scenario and the Business Centers it reaches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = Field(min_length=1, max_length=512)
    business_centers: list[Reach] = Field(default_factory=list)


@dataclass
class _Code:
    reach: tuple[Reach, ...]
    expires_at: datetime
    used: bool = False


class Grants:
    """The app, the tokens and their reach, the auth codes; all in memory."""

    def __init__(
        self,
        app: AppSpec,
        tokens: Sequence[TokenSpec],
        *,
        default_token: str,
        bc_ids: Sequence[str],
    ) -> None:
        self.app = app
        self._bc_ids = tuple(bc_ids)
        everything = self.full_reach()
        self._reach: dict[str, dict[str, Reach]] = {default_token: everything}
        for spec in tokens:
            self._reach[spec.token] = {r.bc_id: r for r in spec.business_centers}
        self._revoked: set[str] = set()
        self._codes: dict[str, _Code] = {}

    def full_reach(self) -> dict[str, Reach]:
        """Every Business Center, as ADMIN and Finance Manager."""
        return {bc_id: Reach(bc_id=bc_id) for bc_id in self._bc_ids}

    # -- checks on every API call ------------------------------------------------------------

    def admit(self, token: str | None) -> str:
        """The token, if it is known and not revoked; else ApiError 40105."""
        if token is None or token not in self._reach or token in self._revoked:
            raise ApiError(BAD_TOKEN, _REVOKED)
        return token

    def reach(self, token: str) -> dict[str, Reach]:
        return self._reach.get(token, {})

    def authorize(self, token: str, path: str, bc_id: str | None) -> None:
        """40001 for a Business Center the token does not reach, or a payment endpoint
        without a Finance role there; unknown Business Centers are left to the handler."""
        if bc_id is None or bc_id not in self._bc_ids:
            return
        granted = self.reach(token).get(bc_id)
        if granted is None:
            raise ApiError(NO_PERMISSION, f"No permission to operate business center {bc_id}")
        if path in PAYMENT_PATHS and granted.finance_role is None:
            raise ApiError(
                NO_PERMISSION,
                f"No permission: a Finance role in business center {bc_id} is required.",
            )

    # -- OAuth -------------------------------------------------------------------------------

    def check_app(self, app_id: object, secret: object) -> None:
        if app_id != self.app.app_id or secret != self.app.secret:
            raise ApiError(NO_PERMISSION, "app_id or secret is invalid.")

    def issue_code(self, now: datetime, reach: Sequence[Reach] | None = None) -> str:
        """A new auth code: exchanged, it gives a new token with ``reach`` (default: all)."""
        # Hex, as TikTok's are: a code never starts with "-", which a command line would
        # take for an option.
        code = secrets.token_hex(20)
        chosen = tuple(reach) if reach is not None else tuple(self.full_reach().values())
        self._codes[code] = _Code(chosen, now + AUTH_CODE_TTL)
        return code

    def exchange(self, code: object, now: datetime) -> str:
        """Use ``code`` up; the new token. ApiError for an unknown, used or expired code."""
        issued = self._codes.get(code) if isinstance(code, str) else None
        if issued is None:
            raise ApiError(BAD_PARAMETER, "Auth code is invalid.")
        if issued.used:
            raise ApiError(BAD_PARAMETER, "Auth code has been used.")
        if now >= issued.expires_at:
            raise ApiError(BAD_PARAMETER, "Auth code is expired.")
        issued.used = True
        token = secrets.token_hex(20)
        self._reach[token] = {r.bc_id: r for r in issued.reach}
        return token

    def revoke(self, token: object) -> None:
        if not isinstance(token, str) or token not in self._reach:
            raise ApiError(BAD_TOKEN, _REVOKED)
        self._revoked.add(token)
