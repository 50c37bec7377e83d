"""Settings of the service's HTTP surface: where it listens, who may call ``/v1``, its limits.

Usage::

    CREDITWATCH_API__TOKENS=tok1,tok2 CREDITWATCH_API__PORT=8080 creditwatch service
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from config.text_list import split_list

__all__ = ["ApiSettings"]


class ApiSettings(BaseModel):
    """The HTTP API, status page, health and metrics endpoints of the service role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Bearer tokens accepted on /v1 routes; none configured means /v1 answers 401 to all.
    tokens: Annotated[list[SecretStr], NoDecode, BeforeValidator(split_list)] = Field(
        default_factory=list
    )
    # A larger request body is refused with 413, before more of it is read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Requests served at once; more get 503 with Retry-After (/healthz is never refused).
    # The app has a Redis pool of its own, of as many connections (a request uses one at a
    # time), apart from the pipeline's: a burst of requests cannot starve the background work.
    max_concurrency: int = Field(default=64, ge=1, le=1000)
    # How long a request waits for one of those connections before its 503.
    redis_wait_s: float = Field(default=5.0, gt=0, le=60)
    # A request's headers must all arrive within this of its connection being ready for them;
    # a client that trickles them (slowloris) is disconnected.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # /metrics names receivers and streams: off, it wants a bearer token like /v1.
    metrics_public: bool = False

    @field_validator("tokens")
    @classmethod
    def _tokens_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            if len(token.get_secret_value()) < 16:
                raise ValueError("every API token needs at least 16 characters")
        return value
