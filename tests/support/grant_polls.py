"""One advertiser's grant poll by poll, as the replica and hostile-HTTP runs publish it: 1000
down to nothing by poll 6 (low on the way at 4), then topped up at poll 8; and the balance
snapshot of advertiser ``n`` at a poll, one minute apart; and the config of the service
processes those runs start (notifying a webhook of each low and exhausted transition), and
their environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from config.settings import Settings
from tests.support.receiver import SECRET
from tests.support.snapshots import grant_snapshot

GRANTS = ["1000", "800", "600", "400", "200", "100", "0", "0", "1500", "1400", "1300", "1200"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(advertiser: int, poll: int) -> bytes:
    advertiser_id = str(810_000 + advertiser)
    observed_at = T0 + timedelta(minutes=poll)
    return grant_snapshot(
        "7001", advertiser_id, GRANTS[poll], observed_at, name=f"Shop {advertiser}"
    ).to_json()


def service_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "creditwatch.yaml"
    path.write_text(
        "notify:\n"
        "  console: false\n"
        # Delivery under chaos, not inhibition: whether a low that is flushed after the
        # exhausted alert of its account fired goes out would depend on timing.
        "  default_inhibit_rules: false\n"
        "  delivery_lease: 3s\n"
        "  receivers:\n"
        f"    - {{type: webhook, name: chaos, url: '{url}', secret: '{SECRET}'}}\n"
        "  route:\n"
        "    receiver: chaos\n"
        "    match: {kind: ['credit.low', 'credit.exhausted']}\n"
        # At once, one message per alert.
        "    group_by: ['...']\n"
        "    group_wait: 0s\n"
        "    group_interval: 0s\n"
    )
    return path


def service_env(settings: Settings, config: Path) -> dict[str, str]:
    """The environment of a ``creditwatch service`` process on the test's Redis and prefix,
    reading ``config``, without the HTTP app."""
    return {
        "CREDITWATCH_REDIS_URL": settings.redis_url or "",
        "CREDITWATCH_STREAMS__PREFIX": settings.streams.prefix,
        "CREDITWATCH_CONFIG_FILE": str(config),
        "CREDITWATCH_API__ENABLED": "false",
        "CREDITWATCH_LOG_LEVEL": "info",
    }
