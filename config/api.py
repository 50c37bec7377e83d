"""Settings of the service's HTTP surface: where it listens and who may call ``/v1``.

Usage::

    CREDITWATCH_API__TOKENS=tok1,tok2 CREDITWATCH_API__PORT=8080 creditwatch service
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
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
    tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens_from_text(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("tokens")
    @classmethod
    def _tokens_long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            if len(token.get_secret_value()) < 16:
                raise ValueError("every API token needs at least 16 characters")
        return value
