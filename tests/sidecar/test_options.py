"""The option table and the thin CLI around it: one rule per setting, settings objects for every command, check
without Flask, one rung of restarts through the poller's public method.

tests/chart/test_settings_agree.py proves the chart's schema agrees with this table; here the table's own rules.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import pytest
from connect_health import config, options
from connect_health.options import Invalid, UsageError

from .conftest import WORKER
from .fakeconnect import Answer, FakeConnect, fixture


def parse(*argv: str) -> Any:
    return config.parse(list(argv))


@pytest.mark.parametrize(("flag", "good", "bad"), [
    ("--restart-attempts", ["0", "100", " 7 "], ["-1", "101", "2.5", "", "three"]),
    ("--failure-threshold", ["0.001", "100", "50"], ["0", "100.5", "-1", "", "half", "nan"]),
    ("--grace", ["0", "12.5", "1e9"], ["-0.5", "", "5m", "inf"]),
    ("--poll-interval", ["0.1", "2.5"], ["0", "-1", "0.001", "1e-300"]),
    ("--port", ["1", "65535"], ["0", "65536", "80.5"]),
    ("--scope", ["worker", "cluster"], ["Cluster", " worker", ""]),
    ("--traces", ["redacted", "none"], ["full", "NONE"]),
    ("--log-format", ["text", "json"], ["xml"]),
    ("--best-effort", ["^audit-", ""], ["(unclosed"]),
    ("--worker-id", ["10.0.0.7:8083", ""], ["10.0.0.7"]),
])
def test_each_kind_takes_its_values_and_refuses_the_rest_naming_the_flag(flag: str, good: list[str],
                                                                       bad: list[str]) -> None:
    o = options.option(flag)
    for text in good:
        o.convert(text)
    for text in bad:
        with pytest.raises(UsageError) as err:
            o.convert(text)
        assert str(err.value).startswith(f"{flag}: ") and "\n" not in str(err.value)


def test_empty_means_unset_only_for_optional_text() -> None:
    assert options.option("--best-effort").convert("") is None
    assert options.option("--connect-user").convert("") is None
    with pytest.raises(UsageError, match="--failure-threshold"):
        options.option("--failure-threshold").convert("")  # a number must be a number; unset it by leaving it out


def test_a_bad_twin_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_HEALTH_RESTART_ATTEMPTS", "1000")
    with pytest.raises(UsageError) as err:
        parse("serve")
    assert str(err.value) == "--restart-attempts: must be between 0 and 100, got '1000' " \
                             "(from CONNECT_HEALTH_RESTART_ATTEMPTS)"


def test_typed_values_follow_json_schema_types() -> None:
    attempts = options.option("--restart-attempts")
    assert attempts.from_json(3.0) == 3 and attempts.from_json(0) == 0
    for bad in ("3", True, 2.5, None, 101):
        with pytest.raises(Invalid):
            attempts.from_json(bad)
    threshold = options.option("--failure-threshold")
    assert threshold.from_json(None) is None  # optional: null is unset
    assert options.option("--best-effort").from_json("") is None
    with pytest.raises(Invalid):
        options.option("--prune").from_json("true")


def test_settings_defaults_are_the_tables() -> None:
    s = parse("serve")
    assert (s.health.grace, s.health.restart_attempts, s.port, s.poll_interval, s.server) == \
        tuple(options.default(f) for f in ("--grace", "--restart-attempts", "--port", "--poll-interval", "--server"))
    assert config.HealthSettings().grace == options.default("--grace")


def test_every_command_has_a_settings_object(tmp_path: Any) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    check = parse("check", "--restart", "--output", "json", "--log-format", "json")
    assert isinstance(check, config.CheckSettings) and (check.restart, check.output, check.log_format) == \
        (True, "json", "json")
    apply = parse("apply", "--connectors-file", str(path), "--prune", "--prune-selector", "^tmp-", "--wait", "2.5")
    assert isinstance(apply, config.ApplySettings)
    assert apply.prune and apply.prune_selector is not None and apply.wait == 2.5 and not apply.dry_run
    with pytest.raises(UsageError, match="--connectors-file: required"):
        parse("apply")


def test_help_shows_default_and_twin() -> None:
    sub = next(a for a in config.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["serve"].format_help()
    flat = " ".join(text.split())
    assert "(default 300) [env CONNECT_HEALTH_GRACE]" in flat


def test_readme_table_has_one_row_per_option() -> None:
    rows = options.markdown_table().splitlines()[2:]
    assert [r.split("|")[1].strip(" `") for r in rows] == [o.flag for o in options.OPTIONS]


def test_check_json_does_not_import_flask(fake: FakeConnect) -> None:
    """`check --output json` builds the status document without the web stack."""
    code = ("import sys; from connect_health import cli; "
            f"rc = cli.main(['check', '--connect-url', '{fake.url}', '--worker-id', '{WORKER}', '--output', 'json']); "
            "assert 'flask' not in sys.modules, 'flask imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert '"healthy": true' in result.stdout


def test_restart_failing_sends_one_rung_and_counts_it(fake: FakeConnect, make_poller: Any) -> None:
    fake.healthy(fixture("failed_task_local.json"))
    fake.route("POST", "/connectors/jdbc-sink/restart", Answer(202, {}))
    poller = make_poller(restart=False)
    assert poller.restart_failing() == []  # nothing polled yet
    poller.poll_once()
    assert fake.requests("POST") == []  # restart=False: a poll sends nothing
    assert poller.restart_failing() == [("jdbc-sink", "requested")]
    assert len(fake.requests("POST")) == 1
    assert poller.poll_once().restarts == {("jdbc-sink", "requested"): 1}
