"""One advertiser's grant poll by poll, as the replica and hostile-HTTP runs publish it: 1000
down to nothing by poll 6 (low on the way at 4), then topped up at poll 8; and the balance
snapshot of advertiser ``n`` at a poll, one minute apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.snapshots import grant_snapshot

GRANTS = ["1000", "800", "600", "400", "200", "100", "0", "0", "1500", "1400", "1300", "1200"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def snapshot(advertiser: int, poll: int) -> bytes:
    advertiser_id = str(810_000 + advertiser)
    observed_at = T0 + timedelta(minutes=poll)
    return grant_snapshot(
        "7001", advertiser_id, GRANTS[poll], observed_at, name=f"Shop {advertiser}"
    ).to_json()
