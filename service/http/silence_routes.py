"""``/v1/silences``: list, create, read and expire silences (the notifiers' own store).

The same rules as ``creditwatch silence add``: matchers name known labels (the built-in ones
and those declared in ``notify.account_labels``) with valid globs; a silence lasts
``notify.silences.duration`` unless ``ends_at`` or ``duration`` says otherwise, and never
longer than ``notify.silences.max_duration``. DELETE expires a silence (its record stays, as
Alertmanager does), so the history of who silenced what is kept. At most
``notify.silences.max_active`` are pending or active at once (409 beyond); the list is paged
(``limit``, ``offset``; ``X-Total-Count`` says how many there are).

Usage::

    app.include_router(silence_router(redis, settings), prefix="/v1")
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from redis.asyncio import Redis

from config.fields import parse_duration
from config.notify import BUILTIN_LABELS
from config.settings import Settings
from service.deliver.clock import utc_now
from service.deliver.silences import Silence, Silences, TooManySilences
from service.http.errors import conflict, found, invalid
from service.http.glob_checks import check_globs

__all__ = ["SilenceRequest", "SilenceView", "silence_router"]

State = Literal["pending", "active", "expired"]
_ID = Path(pattern=r"^sil_[0-9a-f]{1,32}$")
_MISSING: dict[int | str, dict[str, str]] = {404: {"description": "no such silence"}}


def _duration(value: Any) -> Any:
    """``parse_duration``, with an absurd length refused rather than overflowing."""
    try:
        return parse_duration(value)
    except OverflowError:
        raise ValueError("duration too long") from None


SilenceLength = Annotated[timedelta, BeforeValidator(_duration)]


class SilenceRequest(BaseModel):
    """A new silence. ``ends_at`` and ``duration`` are alternatives; neither: the default."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str] = Field(min_length=1, max_length=20)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: SilenceLength | None = None
    comment: str = Field(min_length=1, max_length=1000)
    author: str = Field(min_length=1, max_length=200)

    @field_validator("matchers")
    @classmethod
    def _globs(cls, value: dict[str, str]) -> dict[str, str]:
        check_globs(value.values(), longest=200, what="a matcher's glob")
        return value


class SilenceView(Silence):
    status: State


def silence_router(redis: Redis, settings: Settings) -> APIRouter:
    router = APIRouter()
    silences = Silences(redis, settings.streams)
    defaults = settings.notify.silences
    labels = BUILTIN_LABELS | {k for v in settings.notify.account_labels.values() for k in v}

    def shown(silence: Silence, now: datetime) -> SilenceView:
        return SilenceView.model_validate({**silence.model_dump(), "status": silence.state(now)})

    @router.get("/silences", tags=["silences"])
    async def list_silences(
        response: Response,
        state: Annotated[State | None, Query(description="all states if left out")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[SilenceView]:
        """Silences, oldest start first, ``limit`` from ``offset`` on (``X-Total-Count``: all)."""
        now = utc_now()
        selected = [s for s in await silences.all() if state in (None, s.state(now))]
        response.headers["X-Total-Count"] = str(len(selected))
        return [shown(s, now) for s in selected[offset : offset + limit]]

    @router.post(
        "/silences",
        tags=["silences"],
        status_code=201,
        responses={409: {"description": "as many live silences as notify.silences.max_active"}},
    )
    async def create_silence(request: SilenceRequest) -> SilenceView:
        """Silence matching alerts for a while (recorded in the history, not sent)."""
        unknown = sorted(set(request.matchers) - labels)
        if unknown:
            raise invalid(("body", "matchers", unknown[0]), f"unknown label {unknown[0]!r}")
        if request.ends_at is not None and request.duration is not None:
            raise invalid(("body", "duration"), "give ends_at or duration, not both")
        now = utc_now()
        starts = request.starts_at or now
        if request.ends_at is not None:
            length = request.ends_at - starts
        else:
            length = request.duration if request.duration is not None else defaults.duration
        where = ("body", "ends_at" if request.ends_at is not None else "duration")
        if length <= timedelta(0):
            raise invalid(where, "a silence must end after it starts")
        if length > defaults.max_duration:
            raise invalid(where, "longer than notify.silences.max_duration")
        try:
            ends = starts + length
        except OverflowError:
            raise invalid(("body", "starts_at"), "too far in the future") from None
        try:
            silence = await silences.add(
                request.matchers,
                starts_at=starts,
                ends_at=ends,
                comment=request.comment,
                author=request.author,
                now=now,
                limit=defaults.max_active,
            )
        except TooManySilences as error:
            raise conflict(f"{error} (notify.silences.max_active): expire one first") from None
        return shown(silence, now)

    @router.get("/silences/{silence_id}", tags=["silences"], responses=_MISSING)
    async def get_silence(silence_id: str = _ID) -> SilenceView:
        now = utc_now()
        silence = next((s for s in await silences.all() if s.id == silence_id), None)
        return shown(found(silence, "silence"), now)

    @router.delete("/silences/{silence_id}", tags=["silences"], responses=_MISSING)
    async def expire_silence(silence_id: str = _ID) -> SilenceView:
        """End a silence now; the record stays (state ``expired``)."""
        now = utc_now()
        return shown(found(await silences.expire(silence_id, now), "silence"), now)

    return router
