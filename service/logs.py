"""Logging set-up: structlog for every role, readable on a terminal or JSON for collectors.

Usage::

    configure_logging(settings.log_level, settings.log_format)
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Literal

import structlog

__all__ = ["configure_logging"]


class _JobCancelledAtStop(logging.Filter):
    """APScheduler logs a job cancelled when the scheduler shuts down (a poll still waiting
    for its API budget) as an error with a traceback: a stop is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(
            record.exc_info[1], asyncio.CancelledError
        )
        return not (cancelled and record.name.startswith("apscheduler."))


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["console", "json"] = "console",
) -> None:
    """Route structlog and the standard library (uvicorn, FastStream) to stderr."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        # A cheap level filter: disabled debug calls cost almost nothing on hot paths.
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_JobCancelledAtStop())
