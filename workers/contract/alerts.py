"""Alert transitions: what the detectors emit and every receiver is told.

An *episode* is one stretch of time in which a condition holds for one advertiser (its credit
is low, say). It has a stable ``alert_id`` and at most two transitions: ``firing`` when it
starts and ``resolved`` when it ends. The webhook body built here is the public contract for
every alert kind.

Usage::

    transition = parse_transition(payload)    # one entry of the alerts stream
    body = transition.webhook_body()     # {"type": "credit.low", "timestamp": ..., "data": {...}}
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from workers.contract import wire

__all__ = ["AlertTransition", "Severity", "Status", "episode_id", "parse_transition"]

Severity = Literal["info", "warning", "critical"]
Status = Literal["firing", "resolved"]


def episode_id(kind: str, advertiser_id: str, starts_at: datetime) -> str:
    """A deterministic id, so that two replicas that see the same episode name it alike."""
    seed = f"{kind}|{advertiser_id}|{starts_at.isoformat()}".encode()
    return "al_" + hashlib.sha256(seed).hexdigest()[:24]


class AlertTransition(BaseModel):
    """One firing or resolved transition of one alert episode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    alert_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(pattern=r"^[a-z]+(\.[a-z_]+)+$")
    status: Status
    severity: Severity
    advertiser_id: str
    advertiser_name: str
    bc_id: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    summary: str
    values: dict[str, str]
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    observed_at: AwareDatetime

    @property
    def transition_id(self) -> str:
        """Unique per transition: the idempotency key of everything downstream."""
        return f"{self.alert_id}:{self.status}"

    def webhook_body(self) -> dict[str, Any]:
        """The public JSON body: the same bytes on every retry of one delivery."""
        return {
            "type": self.kind,
            "timestamp": self.observed_at.isoformat(),
            "data": {
                "alert_id": self.alert_id,
                "status": self.status,
                "severity": self.severity,
                "advertiser_id": self.advertiser_id,
                "advertiser_name": self.advertiser_name,
                "bc_id": self.bc_id,
                "currency": self.currency,
                "summary": self.summary,
                "values": dict(self.values),
                "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat() if self.ends_at else None,
                "observed_at": self.observed_at.isoformat(),
            },
        }

    def to_json(self) -> bytes:
        return wire.dumps(self.model_dump(mode="json"))


def parse_transition(payload: bytes | str) -> AlertTransition:
    """Decode one alerts-stream payload; raises ValueError (ValidationError) if malformed."""
    return AlertTransition.model_validate_json(payload)
