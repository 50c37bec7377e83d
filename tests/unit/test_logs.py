"""Logging set-up: what reaches stderr from the libraries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import structlog

from service.logs import configure_logging


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """``configure_logging`` sets process-wide state: the other tests get theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def log_error(name: str, error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        logging.getLogger(name).exception("Job raised an exception")


def test_a_job_cancelled_at_stop_is_not_logged_as_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    log_error("apscheduler.executors.default", asyncio.CancelledError())
    assert "Job raised an exception" not in capsys.readouterr().err
    # A job that failed is still an error; so is a cancellation elsewhere.
    log_error("apscheduler.executors.default", RuntimeError("boom"))
    log_error("httpx", asyncio.CancelledError())
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err
    assert "CancelledError" in err
