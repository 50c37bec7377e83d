"""Message templates (Jinja2): subject, plain text, HTML and the Slack parts.

The defaults ship in ``service/deliver/templates/``; a receiver overrides any of them with
inline source (``templates: {subject: "..."}``) or a directory of files with the same names
(``template_dir``). HTML is autoescaped; Slack text goes through the ``slack`` filter, which
escapes ``&``, ``<`` and ``>`` as Slack's mrkdwn requires.

Usage::

    renderer = Renderer(receiver_settings, promotions_url=settings.notify.promotions_url)
    subject = renderer.render("subject", delivery.transitions, repeat=delivery.repeat)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jinja2

from config.notify import TEMPLATE_NAMES, AnyReceiver
from service.deliver.digest import Digest
from workers.contract.alerts import AlertTransition

__all__ = ["DIGEST_FILES", "FILES", "Renderer", "alert_context"]

FILES = {
    "subject": "subject.txt.j2",
    "text": "text.txt.j2",
    "html": "html.html.j2",
    "slack_title": "slack_title.txt.j2",
    "slack_alert": "slack_alert.md.j2",
}
assert set(FILES) == set(TEMPLATE_NAMES)
# The digest's parts; a ``template_dir`` may hold its own versions under these names.
DIGEST_FILES = {
    "text": "digest_text.txt.j2",
    "html": "digest_html.html.j2",
    "slack_account": "digest_slack.md.j2",
}

EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
RESOLVED_EMOJI = ":white_check_mark:"
# The amount a message leads with: what is left of the credit.
HEADLINE_VALUE = "valid_grant_balance"


def _slack_escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def alert_context(transition: AlertTransition, promotions_url: str) -> dict[str, Any]:
    """One transition as templates see it."""
    data = transition.webhook_body()["data"]
    return {
        **data,
        "kind": transition.kind,
        "emoji": RESOLVED_EMOJI if transition.status == "resolved" else EMOJI[transition.severity],
        "amount": transition.values.get(HEADLINE_VALUE),
        "link": promotions_url.format(
            advertiser_id=transition.advertiser_id, bc_id=transition.bc_id
        ),
    }


class Renderer:
    def __init__(self, receiver: AnyReceiver, *, promotions_url: str) -> None:
        loaders: list[jinja2.BaseLoader] = [
            jinja2.DictLoader({FILES[name]: src for name, src in receiver.templates.items()})
        ]
        if receiver.template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(receiver.template_dir))
        loaders.append(jinja2.PackageLoader("service.deliver", "templates"))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters["slack"] = _slack_escape
        self.promotions_url = promotions_url

    def context(self, transitions: Sequence[AlertTransition], *, repeat: bool) -> dict[str, Any]:
        alerts = [alert_context(t, self.promotions_url) for t in transitions]
        firing = [a for a in alerts if a["status"] == "firing"]
        return {
            "alerts": alerts,
            "firing": firing,
            "resolved": [a for a in alerts if a["status"] == "resolved"],
            "repeat": repeat,
            "kinds": sorted({a["kind"] for a in alerts}),
            "advertisers": sorted({a["advertiser_id"] for a in alerts}),
            "severity": _worst(a["severity"] for a in firing) if firing else "info",
        }

    def render(
        self,
        name: str,
        transitions: Sequence[AlertTransition],
        *,
        repeat: bool = False,
        **extra: Any,
    ) -> str:
        """Render one template; raises jinja2.TemplateError if an override is broken."""
        template = self._env.get_template(FILES[name])
        text: str = template.render(**self.context(transitions, repeat=repeat), **extra)
        return text.strip()

    def render_digest(self, name: str, digest: Digest, **extra: Any) -> str:
        """One part of a digest (``DIGEST_FILES``); raises jinja2.TemplateError if broken."""
        template = self._env.get_template(DIGEST_FILES[name])
        text: str = template.render(digest=digest, **extra)
        return text.strip()


def _worst(severities: Iterable[str]) -> str:
    order = ["info", "warning", "critical"]
    return max(severities, key=order.index)
