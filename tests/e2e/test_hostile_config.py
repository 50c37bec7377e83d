"""The config half of the hostile-input suite: bad settings, run as an operator would.

Each case is one real ``creditwatch check-config`` process (the worktree's console script)
with a bad environment or YAML file: alias bombs, deep nesting, infinities, dates in year 1
and 9999, oversized files, broken syntax next to a secret, and plain wrong values. Each must
exit 2 with exactly one line on stderr naming the setting, print no traceback, finish well
within a generous timeout, and echo no secret (planted ones included). The cases run a few at
a time in one pool; each is then reported as its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CREDITWATCH = str(Path(sys.executable).parent / "creditwatch")
TIMEOUT_S = 120  # a hang is what is tested; this is never the expected duration
TOKEN = "tt-hostile-token-7f3a9c2e5b1d"
HOOK_SECRET = "whsec_" + "aG9zdGlsZS1ob29rLXNlY3JldC0wMDE="
SMTP_PASSWORD = "smtp-hostile-password-42"
REDIS_PASSWORD = "redis-hostile-password-99"
LINE_SECRET = "inline-secret-on-a-broken-line-31337"
SECRETS = (TOKEN, HOOK_SECRET, SMTP_PASSWORD, REDIS_PASSWORD, LINE_SECRET)


@dataclass(frozen=True)
class Case:
    """One bad configuration: extra environment and/or a YAML file, and what must be named."""

    id: str
    named: str
    env: dict[str, str] = field(default_factory=dict)
    yaml: str | None = None


def env(id_: str, name: str, value: str, named: str | None = None) -> Case:
    return Case(id_, named or name, env={name: value})


def yaml_case(id_: str, text: str, named: str) -> Case:
    return Case(id_, named, yaml=text)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def route_bomb() -> str:
    """Routes nesting aliased routes, nine per level: 9**8 (43 million) routes to validate."""
    lines = ["      - &r0 {receiver: hooks}"]
    for level in range(1, 9):
        refs = ", ".join([f"*r{level - 1}"] * 9)
        lines.append(f"      - &r{level} {{receiver: hooks, routes: [{refs}]}}")
    return route("    routes:\n" + "\n".join(lines) + "\n")


def alias_bomb(section: str) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    lines = ["      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        ref = f"*l{level - 1}"
        lines.append(f"      - &l{level} [{', '.join([ref] * 9)}]")
    return f"notify:\n  route:\n    receiver: console\n    {section}:\n" + "\n".join(lines)


CREDIT = (
    "credits:\n  - {{id: c1, advertiser_id: '71', type: free, amount: {amount}, currency: USD, "
    "valid_from: {start}, valid_to: {end}}}\n"
)
PROGRAM = (
    "ladder_programs:\n  - {{id: p1, advertiser_id: '71', currency: USD, window_start: {start}, "
    "window_end: {end}, tiers: [{{threshold: '500', reward: '50'}}]}}\n"
)


def credit_case(
    id_: str,
    field: str | None,
    *,
    start: str = "2026-11-01",
    end: str = "2026-11-30",
    amount: str = "'10'",
) -> Case:
    """A file of one credit, to be named at its ``field`` (the whole credit when None)."""
    at = "credits.0" if field is None else f"credits.0.{field}"
    text = CREDIT.format(start=start, end=end, amount=amount)
    return yaml_case(id_, text, f"CREDITWATCH_CREDITS ({at})")


def program_case(id_: str, field: str, *, start: str, end: str) -> Case:
    """A file of one ladder program, to be named at its ``field``."""
    text = PROGRAM.format(start=start, end=end)
    return yaml_case(id_, text, f"CREDITWATCH_LADDER_PROGRAMS (ladder_programs.0.{field})")


def hook(url: str, secret: str, extra: str = "") -> str:
    return (
        "notify:\n  receivers:\n"
        f"    - {{type: webhook, name: hooks, url: '{url}', secret: '{secret}'{extra}}}\n"
    )


def route(tail: str) -> str:
    return hook("https://h.example.com/x", HOOK_SECRET) + "  route:\n    receiver: hooks\n" + tail


def email(port: int) -> str:
    return (
        "notify:\n  receivers:\n    - {type: email, name: mail, host: smtp.example.com, "
        f"port: {port}, username: u, password: '{SMTP_PASSWORD}', sender: a@example.com, "
        "to: [b@example.com]}\n"
    )


CASES: list[Case] = [
    # Numbers that feed time arithmetic: finite and bounded, or exit 2.
    env("qps-zero", "CREDITWATCH_TIKTOK__QPS", "0"),
    env("qps-word", "CREDITWATCH_TIKTOK__QPS", "fast"),
    env("qps-inf", "CREDITWATCH_TIKTOK__QPS", "inf"),
    env("qps-nan", "CREDITWATCH_TIKTOK__QPS", "nan"),
    env("qps-1e400", "CREDITWATCH_TIKTOK__QPS", "1e400"),
    env("timeout-inf", "CREDITWATCH_TIKTOK__TIMEOUT_S", "inf"),
    env("backoff-nan", "CREDITWATCH_TIKTOK__BACKOFF_BASE_S", "nan"),
    env("backoff-inf", "CREDITWATCH_TIKTOK__BACKOFF_MAX_S", "Infinity"),
    env("retries-many", "CREDITWATCH_TIKTOK__MAX_RETRIES", "99999999999999999999"),
    env("page-size", "CREDITWATCH_TIKTOK__PAGE_SIZE", "51"),
    env("interval-negative", "CREDITWATCH_POLL__BALANCE_INTERVAL_S", "-5"),
    env("interval-inf", "CREDITWATCH_POLL__SPEND_INTERVAL_S", "inf"),
    env("interval-huge", "CREDITWATCH_POLL__REPORT_INTERVAL_S", "1e15"),
    env("jitter-inf", "CREDITWATCH_POLL__JITTER_S", "inf"),
    env("lookback-zero", "CREDITWATCH_POLL__SPEND_LOOKBACK_DAYS", "0"),
    env("closing-inf", "CREDITWATCH_DETECT__LADDER_CLOSING_H", "inf"),
    env("closing-nan", "CREDITWATCH_DETECT__LADDER_CLOSING_H", "nan"),
    env("closing-1e308", "CREDITWATCH_DETECT__LADDER_CLOSING_H", "1e308"),
    env("horizons-huge", "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS", "[99999999999]"),
    env("horizons-zero", "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS", "[0]"),
    env("horizons-empty", "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS", "[]"),
    env("horizons-words", "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS", '["soon"]'),
    env("horizons-broken-json", "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS", "[1,"),
    env("depletion-1e400", "CREDITWATCH_DETECT__DEPLETION_HORIZON_H", "1e400"),
    env("runway-infinity", "CREDITWATCH_DETECT__CASH_RUNWAY_DAYS", "Infinity"),
    env("runway-nan", "CREDITWATCH_DETECT__CASH_RUNWAY_DAYS", "NaN"),
    env("stale-inf", "CREDITWATCH_DETECT__STALE_INTERVALS", "inf"),
    env("reconcile-inf", "CREDITWATCH_DETECT__RECONCILE_AFTER_H", "inf"),
    env("event-window-inf", "CREDITWATCH_DETECT__EVENT_WINDOW_H", "inf"),
    env("low-percent", "CREDITWATCH_DETECT__THRESHOLDS__LOW_PERCENT", "101"),
    # Names, ids, URLs and choices.
    env("prefix-space", "CREDITWATCH_STREAMS__PREFIX", "a b"),
    env("prefix-long", "CREDITWATCH_STREAMS__PREFIX", "p" * 100),
    env("batch-zero", "CREDITWATCH_STREAMS__DETECT_BATCH", "0"),
    env("shards-zero", "CREDITWATCH_STREAMS__SHARDS", "0"),
    env("shards-word", "CREDITWATCH_STREAMS__SHARDS", "three"),
    env("shards-huge", "CREDITWATCH_STREAMS__SHARDS", "100000"),
    Case(
        "shards-braced-prefix",
        "CREDITWATCH_STREAMS__SHARDS",
        env={"CREDITWATCH_STREAMS__SHARDS": "4", "CREDITWATCH_STREAMS__PREFIX": "{cw}"},
    ),
    Case(
        "cluster-one-shard",
        "CREDITWATCH_STREAMS__SHARDS",
        env={"CREDITWATCH_REDIS_URL": f"redis+cluster://:{REDIS_PASSWORD}@h1:7000,h2:7001"},
    ),
    env("log-level", "CREDITWATCH_LOG_LEVEL", "verbose"),
    env("redis-scheme", "CREDITWATCH_REDIS_URL", f"http://:{REDIS_PASSWORD}@h"),
    env(
        "redis-sentinel-no-host", "CREDITWATCH_REDIS_URL", f"redis+sentinel://:{REDIS_PASSWORD}@/m"
    ),
    env("redis-sentinel-no-master", "CREDITWATCH_REDIS_URL", "redis+sentinel://h:26379"),
    env("bc-ids-space", "CREDITWATCH_TIKTOK__BC_IDS", "12 34"),
    env("bc-ids-bad", "CREDITWATCH_TIKTOK__BC_IDS", '["x;y"]'),
    env("base-url", "CREDITWATCH_TIKTOK__BASE_URL", "ftp://x"),
    env("api-port", "CREDITWATCH_API__PORT", "70000"),
    env("unknown-top", "CREDITWATCH_TIKTK__QPS", "3"),
    env("unknown-nested", "CREDITWATCH_TIKTOK__NOPE", "1", "CREDITWATCH_TIKTOK__NOPE"),
    env("config-missing", "CREDITWATCH_CONFIG_FILE", "/no/such/creditwatch.yaml"),
    # Nesting and size through the environment.
    env("env-deep-list", "CREDITWATCH_TIKTOK__BC_IDS", nested(5000)),
    env("env-deep-object", "CREDITWATCH_NOTIFY", '{"a":' * 3000 + "1" + "}" * 3000),
    env("env-deep-detect", "CREDITWATCH_DETECT__ADVERTISERS", '{"a":' * 500 + "1" + "}" * 500),
    env("env-broken-object", "CREDITWATCH_NOTIFY", '{"receivers": ['),
    # The YAML file: bombs, depth, size, syntax, encoding.
    yaml_case("alias-bomb-routes", route_bomb(), "CREDITWATCH_CONFIG_FILE"),
    yaml_case("alias-bomb-route-lists", alias_bomb("routes"), "CREDITWATCH_CONFIG_FILE"),
    yaml_case("alias-bomb-group-by", alias_bomb("group_by"), "CREDITWATCH_CONFIG_FILE"),
    yaml_case("yaml-deep-flow", "notify: " + nested(5000), "CREDITWATCH_CONFIG_FILE"),
    yaml_case(
        "yaml-deep-block",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n",
        "CREDITWATCH_CONFIG_FILE",
    ),
    yaml_case("yaml-too-large", "# " + "x" * (2 << 20) + "\n", "CREDITWATCH_CONFIG_FILE"),
    yaml_case(
        "yaml-broken-next-to-secret",
        f'tiktok:\n  access_token: "{LINE_SECRET}\n  qps: [\n',
        "CREDITWATCH_CONFIG_FILE",
    ),
    yaml_case(
        "yaml-tab-after-secret",
        f"tiktok:\n  access_token: {LINE_SECRET}\n\tqps: 3\n",
        "CREDITWATCH_CONFIG_FILE",
    ),
    yaml_case(
        "yaml-python-tag", "tiktok: !!python/object:os.system {}\n", "CREDITWATCH_CONFIG_FILE"
    ),
    yaml_case("yaml-not-a-mapping", "- just\n- a list\n", "CREDITWATCH_CONFIG_FILE"),
    yaml_case("yaml-huge-int", "tiktok:\n  qps: " + "9" * 5000 + "\n", "CREDITWATCH_TIKTOK__QPS"),
    yaml_case("yaml-two-documents", "tiktok: {}\n---\npoll: {}\n", "CREDITWATCH_CONFIG_FILE"),
    yaml_case(
        "yaml-inf", "detect:\n  ladder_closing_h: .inf\n", "CREDITWATCH_DETECT__LADDER_CLOSING_H"
    ),
    yaml_case(
        "yaml-nan", "detect:\n  depletion_horizon_h: .nan\n", "CREDITWATCH_DETECT__DEPLETION"
    ),
    yaml_case(
        "yaml-horizon-huge",
        "detect:\n  expiring_horizons_days: [7, 99999999999]\n",
        "CREDITWATCH_DETECT__EXPIRING_HORIZONS_DAYS (detect.expiring_horizons_days.1)",
    ),
    yaml_case("yaml-unknown-key", "tiktok:\n  qpss: 3\n", "CREDITWATCH_TIKTOK__QPSS"),
    # Ledger dates: 2000..2100 only.
    credit_case("credit-valid-to-9999", "valid_to", end="9999-12-31"),
    credit_case("credit-valid-from-year-1", "valid_from", start="0001-01-01"),
    credit_case("credit-datetime-9999", "valid_to", end="'9999-12-31T23:59:59-12:00'"),
    credit_case("credit-bad-date", "valid_from", start="2026-13-45"),
    credit_case("credit-backwards", None, start="2026-11-30", end="2026-11-01"),
    program_case("ladder-window-year-1", "window_start", start="0001-01-01", end="0001-02-01"),
    program_case("ladder-window-end-9999", "window_end", start="2026-11-01", end="9999-12-31"),
    credit_case("credit-amount-negative", "amount", amount="'-5'"),
    credit_case("credit-amount-infinity", "amount", amount="Infinity"),
    # Receivers and routes (secrets planted next to the fault).
    yaml_case(
        "hook-url-ftp",
        hook("ftp://h.example.com/x", HOOK_SECRET),
        "CREDITWATCH_NOTIFY__RECEIVERS (notify.receivers.0",
    ),
    yaml_case(
        "hook-secret-short",
        hook("https://h.example.com/x", "whsec_" + LINE_SECRET[:8]),
        "CREDITWATCH_NOTIFY__RECEIVERS (notify.receivers.0",
    ),
    yaml_case(
        "hook-secret-env-missing",
        hook("https://h.example.com/x", "${NO_SUCH_HOOK_SECRET}"),
        "CREDITWATCH_NOTIFY__RECEIVERS (notify.receivers.0",
    ),
    yaml_case(
        "hook-timeout-inf",
        hook("https://h.example.com/x", HOOK_SECRET, ", timeout_s: .inf"),
        "CREDITWATCH_NOTIFY__RECEIVERS (notify.receivers.0",
    ),
    yaml_case(
        "email-port",
        email(99999),
        "CREDITWATCH_NOTIFY__RECEIVERS (notify.receivers.0",
    ),
    yaml_case("route-unknown-receiver", route("    routes: [{receiver: nobody}]\n"), "route"),
    yaml_case(
        "route-bad-glob",
        route("    routes: [{receiver: hooks, match: {kind: 'credit.[x'}}]\n"),
        "route",
    ),
    yaml_case("route-unknown-label", route("    match: {colour: red}\n"), "route"),
    yaml_case("route-group-wait-word", route("    group_wait: soonish\n"), "route"),
    yaml_case("route-group-wait-inf", route("    group_wait: .inf\n"), "route"),
    yaml_case("route-repeat-huge", route("    repeat_interval: 99999999999d\n"), "route"),
    yaml_case(
        "retry-delay-huge",
        "notify:\n  retry:\n    delays: [5s, 1.0e+300]\n",
        "CREDITWATCH_NOTIFY__RETRY__DELAYS (notify.retry.delays.1)",
    ),
    yaml_case(
        "mute-unknown-zone",
        "notify:\n  mute_time_intervals: [{name: night, time_zone: Mars/Olympus}]\n",
        "CREDITWATCH_NOTIFY__MUTE_TIME_INTERVALS (notify.mute_time_intervals.0.time_zone)",
    ),
    # Retired settings: refused with their replacement, never half read.
    yaml_case(
        "retired-webhooks-yaml",
        "notify:\n  webhooks:\n    - {name: ops, url: 'https://h.example.com/x', "
        f"secret: '{HOOK_SECRET}', kinds: ['credit.*']}}\n",
        "CREDITWATCH_NOTIFY__WEBHOOKS (notify.webhooks): retired; declare notify.receivers",
    ),
    env(
        "retired-webhooks-env",
        "CREDITWATCH_NOTIFY__WEBHOOKS",
        f'[{{"name": "ops", "url": "https://h.example.com/x", "secret": "{HOOK_SECRET}"}}]',
        "CREDITWATCH_NOTIFY__WEBHOOKS (notify.webhooks): retired; declare notify.receivers",
    ),
    env(
        "retired-webhooks-in-notify-json",
        "CREDITWATCH_NOTIFY",
        '{"webhooks": []}',
        "CREDITWATCH_NOTIFY__WEBHOOKS (notify.webhooks): retired; declare notify.receivers",
    ),
    yaml_case(
        "template-broken",
        "notify:\n  receivers:\n    - {type: email, name: mail, host: smtp.example.com, "
        f"password: '{SMTP_PASSWORD}', sender: a@example.com, to: [b@example.com], "
        "templates: {subject: '{{ broken'}}\n",
        "notify.receivers",
    ),
]


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: still running at the timeout
    stdout: str
    stderr: str


def _run(case: Case, folder: Path) -> Run:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITWATCH_")}
    extra = {"CREDITWATCH_TIKTOK__ACCESS_TOKEN": TOKEN, **case.env}
    if case.yaml is not None:
        config = folder / f"{case.id}.yaml"
        config.write_text(case.yaml)
        extra["CREDITWATCH_CONFIG_FILE"] = str(config)
    try:
        done = subprocess.run(
            [CREDITWATCH, "check-config"],
            env={**clean, **extra},
            cwd=folder,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as hung:
        return Run(None, str(hung.stdout or ""), str(hung.stderr or ""))
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """The selected cases, run three at a time (each is a whole interpreter start)."""
    folder = tmp_path_factory.mktemp("hostile-config")
    chosen = _selected(request)
    cases = [c for c in CASES if c.id in chosen]
    run: Callable[[Case], Run] = lambda case: _run(case, folder)  # noqa: E731
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip((c.id for c in cases), pool.map(run, cases), strict=True))


def _selected(request: pytest.FixtureRequest) -> set[str]:
    """The ids of the cases this session runs (all of them, unless ``-k`` chose some)."""
    chosen: set[str] = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("case"), Case):
            chosen.add(callspec.params["case"].id)
    return chosen


def test_the_suite_is_the_size_it_claims() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_config_exits_2_with_one_line_naming_the_setting(
    runs: dict[str, Run], case: Case
) -> None:
    run = runs[case.id]
    assert run.returncode is not None, f"still running after {TIMEOUT_S} s"
    assert "Traceback" not in run.stderr
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("creditwatch: "), lines[0]
    assert case.named in lines[0], lines[0]
    assert run.stdout == ""  # nothing printed: the effective settings are for valid ones
    for secret in SECRETS:
        assert secret not in run.stderr
