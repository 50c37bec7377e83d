"""Where a notification points: the account's status page and its Promotions page.

The status page link needs ``notify.external_url`` (the address the service is reached at
from outside); without it only the Promotions page is linked.

Usage::

    links = AlertLinks.of(settings.notify)
    for text, href in links.of_alert(transition): ...
"""

from __future__ import annotations

from dataclasses import dataclass

from config.notify import NotifySettings
from workers.contract.alerts import AlertTransition

__all__ = ["AlertLinks"]


@dataclass(frozen=True)
class AlertLinks:
    promotions_url: str
    external_url: str | None = None

    @classmethod
    def of(cls, notify: NotifySettings) -> AlertLinks:
        return cls(notify.promotions_url, notify.external_url)

    def status_page(self, advertiser_id: str) -> str | None:
        if self.external_url is None:
            return None
        return f"{self.external_url}/accounts/{advertiser_id}"

    def promotions(self, advertiser_id: str, bc_id: str) -> str:
        return self.promotions_url.format(advertiser_id=advertiser_id, bc_id=bc_id)

    def of_alert(self, transition: AlertTransition) -> list[tuple[str, str]]:
        """(text, href) pairs: the status page first (if known), then the Promotions page."""
        out: list[tuple[str, str]] = []
        page = self.status_page(transition.advertiser_id)
        if page is not None:
            out.append(
                (f"{transition.advertiser_name or transition.advertiser_id} on creditwatch", page)
            )
        out.append(("Promotions page", self.promotions(transition.advertiser_id, transition.bc_id)))
        return out
