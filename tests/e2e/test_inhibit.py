"""Inhibition rules: through the real pipeline (real Redis, a real webhook endpoint, a fake
clock), and properties of the pure matching function (hypothesis)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from config.notify import InhibitRule, NotifySettings
from config.settings import Settings, StreamSettings
from service.deliver.clock import FakeClock
from service.deliver.deliveries import Delivery
from service.deliver.inhibit import Inhibitor, inhibition_of
from service.deliver.pipeline import NotifyPipeline
from tests.support.cli import refused_config
from tests.support.notify import NotifyWith, notify_settings, resolved, run_rounds, transition
from tests.support.receiver import WebhookSink
from workers.contract.alerts import AlertTransition


async def records(notify: NotifyPipeline) -> list[Delivery]:
    return [d for d in await notify.deliveries.history(limit=100) if d.status == "inhibited"]


def hooked(settings: Settings, sink: WebhookSink, **notify: Any) -> Settings:
    hook, route = sink.receiver_and_route("ops")
    return notify_settings(settings, receivers=[hook], route=route, **notify)


def low(advertiser_id: str = "71") -> AlertTransition:
    return transition("credit.low", severity="warning", advertiser_id=advertiser_id, grant="3")


async def test_exhausted_inhibits_low_of_the_same_account_until_it_resolves(
    settings: Settings, sink: WebhookSink, clock: FakeClock, notify_with: NotifyWith
) -> None:
    notify = notify_with(hooked(settings, sink), console=io.StringIO())
    counted = {"receiver": "ops", "outcome": "inhibited"}
    before = REGISTRY.get_sample_value("creditwatch_deliveries_total", counted) or 0
    exhausted = transition()  # credit.exhausted for 71
    # Low fires first in the batch (as a balance that drops to 0 at once can make it, in one
    # commit of the detector's): what counts is what fires when the group is flushed, as in
    # Alertmanager, and a zero-wait webhook's group is flushed as the batch joins it.
    entries = [(low().to_json(), "1-0"), (exhausted.to_json(), "2-0")]
    await notify.notifier.handle_batch([*entries, (low("72").to_json(), "3-0")])
    await notify.run_once()
    await notify.run_once()  # the sender delivers what the flush made
    assert sorted(sink.arrived()) == ["credit.exhausted firing 71", "credit.low firing 72"]
    [record] = await records(notify)
    assert [t.kind for t in record.transitions] == ["credit.low"]
    assert record.transitions[0].advertiser_id == "71"
    assert "rule 0" in record.note and exhausted.alert_id in record.note
    assert "credit.exhausted" in record.note
    # Looking again later records nothing twice and still sends nothing.
    clock.advance(timedelta(minutes=5))
    await notify.run_once()
    assert len(await records(notify)) == 1 and len(sink.arrived()) == 2
    assert REGISTRY.get_sample_value("creditwatch_deliveries_total", counted) == before + 1

    # The source resolves: the low alert, still firing, goes out now (its group is woken,
    # well before the once-a-minute look again).
    clock.advance(timedelta(seconds=10))
    await notify.notifier.handle(resolved(exhausted, clock.now).to_json(), "4-0")
    await notify.run_once()
    await notify.run_once()
    assert sorted(sink.arrived()[2:]) == ["credit.exhausted resolved 71", "credit.low firing 71"]
    assert len(sink.received) == 4 and all(r.verified for r in sink.received)


async def test_a_target_that_resolves_while_inhibited_is_never_sent(
    settings: Settings, sink: WebhookSink, clock: FakeClock, notify_with: NotifyWith
) -> None:
    notify = notify_with(hooked(settings, sink), console=io.StringIO())
    exhausted, target = transition(), low()
    await notify.notifier.handle(exhausted.to_json(), "1-0")
    await notify.notifier.handle(target.to_json(), "2-0")
    await notify.run_once()
    clock.advance(timedelta(minutes=2))
    await notify.notifier.handle(resolved(target, clock.now).to_json(), "3-0")
    await notify.run_once()
    clock.advance(timedelta(minutes=2))
    await notify.notifier.handle(resolved(exhausted, clock.now).to_json(), "4-0")
    await run_rounds(notify, clock, 3, timedelta(minutes=2))
    assert sink.arrived() == ["credit.exhausted firing 71", "credit.exhausted resolved 71"]
    assert len(await records(notify)) == 1


async def test_a_batch_shows_its_sources_in_order_and_a_late_firing_revives_none(
    settings: Settings, sink: WebhookSink, clock: FakeClock, notify_with: NotifyWith
) -> None:
    notify = notify_with(hooked(settings, sink), console=io.StringIO())
    exhausted = transition()
    ended = resolved(exhausted, clock.now)
    # A source that fires and ends within one batch, then its firing read again, late (an
    # entry reclaimed from a replica that stalled): it mutes nothing after its end.
    await notify.notifier.handle_batch([(exhausted.to_json(), "1-0"), (ended.to_json(), "2-0")])
    await notify.notifier.handle_batch([(exhausted.to_json(), "1-0")])
    assert (await notify.inhibitor.sources()).labels == {}
    await notify.notifier.handle(low().to_json(), "3-0")
    await notify.run_once()
    await notify.run_once()
    assert sorted(sink.arrived()) == [
        "credit.exhausted firing 71",
        "credit.exhausted resolved 71",
        "credit.low firing 71",
    ]
    assert await records(notify) == []


async def test_an_alert_already_sent_is_not_repeated_while_inhibited(
    settings: Settings, sink: WebhookSink, clock: FakeClock, notify_with: NotifyWith
) -> None:
    notify = notify_with(hooked(settings, sink, repeat_interval="4h"), console=io.StringIO())
    target = low()
    await notify.notifier.handle(target.to_json(), "1-0")
    await notify.run_once()
    await notify.run_once()
    await notify.notifier.handle(transition(starts_at=clock.now).to_json(), "2-0")
    await notify.run_once()
    await notify.run_once()
    assert sink.arrived() == ["credit.low firing 71", "credit.exhausted firing 71"]
    clock.advance(timedelta(hours=4, minutes=1))
    await notify.run_once()
    await notify.run_once()
    # The exhausted alert repeats; the low one it mutes does not.
    assert sink.arrived()[2:] == ["credit.exhausted firing 71"]
    # Told of its firing, the receiver is told of its end, inhibited or not.
    await notify.notifier.handle(resolved(target, clock.now).to_json(), "3-0")
    await notify.run_once()
    await notify.run_once()
    assert sink.arrived()[3:] == ["credit.low resolved 71"]


async def test_user_rules_with_account_labels_and_the_defaults_switched_off(
    settings: Settings, sink: WebhookSink, notify_with: NotifyWith
) -> None:
    rules = [
        {
            "source_match": {"kind": "data.stale"},
            "target_match": {"kind": "credit.*"},
            "equal": ["team"],
        }
    ]
    configured = hooked(
        settings,
        sink,
        inhibit_rules=rules,
        default_inhibit_rules=False,
        account_labels={"71": {"team": "growth"}, "72": {"team": "growth"}, "73": {"team": "x"}},
    )
    notify = notify_with(configured, console=io.StringIO())
    await notify.notifier.handle(transition("data.stale", advertiser_id="71").to_json(), "1-0")
    await notify.notifier.handle(transition(advertiser_id="72").to_json(), "2-0")
    await notify.notifier.handle(transition(advertiser_id="73").to_json(), "3-0")
    await notify.notifier.handle(low("71").to_json(), "4-0")
    await notify.run_once()
    await notify.run_once()
    # 72 shares the team label with the stale 71 and is muted, 73 is in another team; low of
    # 71 is muted by the stale alert (same team), not by a default rule (switched off).
    assert sorted(sink.arrived()) == ["credit.exhausted firing 73", "data.stale firing 71"]
    assert sorted(r.transitions[0].advertiser_id for r in await records(notify)) == ["71", "72"]


async def test_without_the_defaults_exhausted_does_not_mute_low(
    settings: Settings, sink: WebhookSink, notify_with: NotifyWith
) -> None:
    notify = notify_with(hooked(settings, sink, default_inhibit_rules=False), console=io.StringIO())
    await notify.notifier.handle(transition().to_json(), "1-0")
    await notify.notifier.handle(low().to_json(), "2-0")
    await notify.run_once()
    await notify.run_once()
    assert sorted(sink.arrived()) == ["credit.exhausted firing 71", "credit.low firing 71"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"source_match": {"kind": "a.b"}, "target_match": {"kind": "c.d"}, "equal": ["tema"]},
            "inhibit_rules.0.equal: unknown label 'tema'",
        ),
        (
            {"source_match": {"knd": "a.b"}, "target_match": {"kind": "c.d"}},
            "inhibit_rules.0.source: unknown label 'knd'",
        ),
        (
            {"source_matchers": ['tema="x"'], "target_match": {"kind": "c.d"}},
            "inhibit_rules.0.source: unknown label 'tema'",
        ),
        ({"source_match": {"kind": "a.[b"}, "target_match": {"kind": "c"}}, "bad glob 'a.[b'"),
        ({"source_matchers": ["kind=~(a"], "target_match": {"kind": "c"}}, "bad regex"),
        ({"source_matchers": ["kind"], "target_match": {"kind": "c"}}, "not a matcher: 'kind'"),
        ({"target_match": {"kind": "c"}}, "source_match or source_matchers is required"),
    ],
)
def test_bad_inhibit_rules_are_named(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as failure:
        NotifySettings.model_validate({"inhibit_rules": [rule]})
    assert message in str(failure.value)


def test_a_bad_inhibit_rule_in_the_file_exits_2_naming_it(tmp_path: Any) -> None:
    result = refused_config(
        tmp_path,
        "notify:\n  inhibit_rules:\n    - source_match: {kind: credit.exhausted}\n"
        "      target_match: {kind: credit.low}\n      equal: [advertiser]\n",
    )
    assert "inhibit_rules.0.equal" in result.stderr and "advertiser" in result.stderr


def test_alertmanager_matcher_strings_are_read_with_their_four_operators() -> None:
    rule = InhibitRule.model_validate(
        {
            "source_matchers": ['kind="credit.exhausted"', "severity!=info"],
            "target_matchers": [r'kind=~"credit\.(low|depletion_forecast)"', 'team!~"ops|sre"'],
            "equal": ["advertiser_id"],
        }
    )
    source = {"kind": "credit.exhausted", "severity": "critical", "advertiser_id": "71"}
    target = {"kind": "credit.low", "advertiser_id": "71", "team": "growth"}
    assert inhibition_of([rule], target, {"al_s": source}) is not None
    # The regex matches whole values only, as Alertmanager anchors it.
    assert inhibition_of([rule], {**target, "kind": "credit.lowest"}, {"al_s": source}) is None
    assert inhibition_of([rule], {**target, "team": "sre"}, {"al_s": source}) is None
    assert inhibition_of([rule], target, {"al_s": {**source, "severity": "info"}}) is None
    # A label the target lacks is the empty string: != and !~ hold for it.
    assert inhibition_of([rule], {"kind": "credit.low", "advertiser_id": "71"}, {"al_s": source})


# -- properties of the matching function ------------------------------------------------------

NAMES = ("kind", "advertiser_id", "team")
VALUES = ("a", "b")
labels_st = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES))
# Matchers with plain values (no glob characters), so the oracle below can compare exactly.
match_st = st.dictionaries(
    st.sampled_from(NAMES), st.lists(st.sampled_from(VALUES), min_size=1, max_size=2), min_size=1
)
rule_st = st.builds(
    InhibitRule,
    source_match=match_st,
    target_match=match_st,
    equal=st.lists(st.sampled_from(NAMES), unique=True, max_size=3),
)
sources_st = st.dictionaries(st.sampled_from([f"al_{n}" for n in range(4)]), labels_st, max_size=4)


def plain_match(match: dict[str, list[str]], labels: dict[str, str]) -> bool:
    return all(labels.get(name, "") in values for name, values in match.items())


def oracle(rule: InhibitRule, target: dict[str, str], sources: dict[str, dict[str, str]]) -> bool:
    """Alertmanager's rule, written from its documentation rather than from our code."""
    if not plain_match(rule.target_match, target):
        return False
    for source in sources.values():
        both = plain_match(rule.source_match, target) and plain_match(rule.target_match, source)
        same = all(source.get(n, "") == target.get(n, "") for n in rule.equal)
        if plain_match(rule.source_match, source) and same and not both:
            return True
    return False


@hypothesis_settings(max_examples=300)
@given(rule=rule_st, target=labels_st, sources=sources_st)
def test_a_target_is_inhibited_exactly_when_alertmanager_says(
    rule: InhibitRule, target: dict[str, str], sources: dict[str, dict[str, str]]
) -> None:
    found = inhibition_of([rule], target, sources)
    assert (found is not None) == oracle(rule, target, sources)
    if found is not None:
        source = sources[found.source_alert_id]
        assert plain_match(rule.source_match, source)
        assert all(source.get(n, "") == target.get(n, "") for n in rule.equal)


@given(rules=st.lists(rule_st, max_size=3), alert=labels_st)
def test_an_alert_never_inhibits_itself(rules: list[InhibitRule], alert: dict[str, str]) -> None:
    assert inhibition_of(rules, alert, {"al_self": alert}) is None


@given(rules=st.lists(rule_st, max_size=3), target=labels_st, a=sources_st, b=sources_st)
def test_more_firing_sources_never_release_a_target(
    rules: list[InhibitRule],
    target: dict[str, str],
    a: dict[str, dict[str, str]],
    b: dict[str, dict[str, str]],
) -> None:
    if inhibition_of(rules, target, a) is not None:
        assert inhibition_of(rules, target, {**b, **a}) is not None


@given(rule=rule_st, target=labels_st, source=labels_st)
def test_an_equal_label_that_differs_releases_the_target(
    rule: InhibitRule, target: dict[str, str], source: dict[str, str]
) -> None:
    if not rule.equal:
        return
    name = rule.equal[0]
    other = next(v for v in VALUES if v != target.get(name, ""))
    assert inhibition_of([rule], target, {"al_0": {**source, name: other}}) is None


@given(rule=rule_st, target=labels_st, sources=sources_st)
def test_matcher_strings_and_globs_say_the_same(
    rule: InhibitRule, target: dict[str, str], sources: dict[str, dict[str, str]]
) -> None:
    def strings(match: dict[str, list[str]]) -> list[str]:
        return [f'{name}=~"{"|".join(values)}"' for name, values in match.items()]

    written = InhibitRule.model_validate(
        {
            "source_matchers": strings(rule.source_match),
            "target_matchers": strings(rule.target_match),
            "equal": rule.equal,
        }
    )
    assert inhibition_of([written], target, sources) == inhibition_of([rule], target, sources)


@given(
    rules=st.lists(rule_st, max_size=3), target=labels_st, readings=st.lists(sources_st, max_size=4)
)
def test_sources_sorted_out_again_after_changes_say_what_a_fresh_sorting_says(
    rules: list[InhibitRule],
    target: dict[str, str],
    readings: list[dict[str, dict[str, str]]],
) -> None:
    """A flush reads the sources hash each time; the inhibitor reuses what did not change
    since its last reading. Whatever came before, the answer is the one from scratch."""
    inhibitor = Inhibitor(Redis(), StreamSettings(prefix="t"), rules, labels=lambda t: {})
    for sources in [*readings, {"al_0": target}, {}]:
        rows = {k.encode(): json.dumps(v).encode() for k, v in sources.items()}
        assert inhibition_of(rules, target, inhibitor.firing(rows)) == inhibition_of(
            rules, target, sources
        )
