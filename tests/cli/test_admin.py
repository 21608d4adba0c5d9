"""``locks``, ``stats``, ``health`` and ``status`` through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_support import as_json, ok, one_error_line, submit
from support import wait_until, write_template

from opsconsole.core.store import claim as claim_store


@pytest.fixture
def locked(catalog):
    write_template(
        catalog,
        "locked",
        "runner: shell\ncommand: [sleep, '30']\nconcurrency: {key: 'deploy-{{ env }}', limit: 1}\n"
        "params:\n  env: {type: string, default: staging}\n",
    )
    return "locked"


def test_locks_show_the_holder_and_the_waiters_in_order(cli, locked, service, start_pool):
    start_pool(slots=2)
    holder = submit(cli, locked)["id"]
    wait_until(lambda: service.get(holder).state.value == "running", timeout=10)
    second = submit(cli, locked)["id"]
    third = submit(cli, locked, "--priority", "high")["id"]
    other = submit(cli, locked, "-p", "env=production")["id"]  # another key: runs at once
    wait_until(lambda: service.get(other).state.value == "running", timeout=10)
    views = {v["key"]: v for v in as_json(cli("locks", "--json"))["locks"]}
    staging = views["deploy-staging"]
    assert staging["limit"] == 1
    assert [h["job"] for h in staging["holders"]] == [holder]
    assert staging["holders"][0]["template"] == "locked"
    assert staging["holders"][0]["since"].endswith("Z")
    assert staging["waiting"] == [third, second]  # claim order: priority, then age
    assert staging["since"] == staging["holders"][0]["since"]
    assert views["deploy-production"]["waiting"] == []
    text = ok(cli("locks")).stdout
    [row] = [line for line in text.splitlines() if line.startswith("deploy-staging")]
    assert holder in row and f"{third} {second}" in row


def test_locks_when_none_are_held(cli):
    assert as_json(cli("locks", "--json")) == {"locks": []}
    assert ok(cli("locks")).stdout == "no concurrency keys are held\n"


def test_stats_count_partial_apart_from_failed(cli, catalog, fails):
    write_template(
        catalog, "half", "runner: shell\ncommand: [sh, -c, 'exit 3']\npartial_exit_codes: [3]\n"
    )
    submit(cli, "half")
    submit(cli, "half")
    submit(cli, fails)
    ok(cli("worker", "--once"), 1)
    stats = as_json(cli("stats", "--json"))
    assert (stats["counts"]["partial"], stats["counts"]["failed"]) == (2, 1)
    per = {t["template"]: t for t in stats["templates"]}
    half = per["half"]
    assert (half["runs"], half["succeeded"], half["partial"], half["failed"]) == (2, 0, 2, 0)
    assert (per["fails"]["partial"], per["fails"]["failed"]) == (0, 1)
    rows = ok(cli("stats")).stdout.splitlines()
    assert rows[2].split()[:5] == ["TEMPLATE", "RUNS", "OK", "PARTIAL", "FAILED"]
    [row] = [r for r in rows if r.startswith("half")]
    assert row.split()[:5] == ["half", "2", "0", "2", "0"]


def test_stats_json_counts(cli, echo, fails):
    submit(cli, echo)
    submit(cli, fails)
    ok(cli("worker", "--once"), 1)
    submit(cli, echo)
    stats = as_json(cli("stats", "--json"))
    counts = stats["counts"]
    assert (counts["succeeded"], counts["failed"], counts["queued"]) == (1, 1, 1)
    assert sum(counts.values()) == 3
    assert "awaiting_approval" in counts and "interrupted" in counts
    assert stats["success_rate"] == 0.5
    per = {t["template"]: t for t in stats["templates"]}
    assert (per["echo"]["runs"], per["echo"]["succeeded"], per["echo"]["failed"]) == (1, 1, 0)
    assert (per["fails"]["runs"], per["fails"]["failed"]) == (1, 1)
    assert per["fails"]["recent"] == ["failed"]
    assert as_json(cli("stats", "--since", "1h", "--json"))["counts"] == counts
    text = ok(cli("stats")).stdout
    assert "succeeded 1" in text and "success rate 50.0%" in text


def test_stats_with_a_bad_period(cli):
    assert "invalid duration" in one_error_line(ok(cli("stats", "--since", "soon"), 2))


def test_health_is_ok_on_a_fresh_store(cli):
    health = as_json(cli("health", "--json"))
    assert health["healthy"] is True
    assert [c["name"] for c in health["checks"]] == [
        "store",
        "workers",
        "key",
        "retention",
        "files",
        "disk",
        "catalog",
        "terraform",
    ]
    assert all(c["ok"] for c in health["checks"])
    assert ok(cli("health")).stdout.startswith("ok   store")


def test_health_fails_with_a_stale_worker(cli, service):
    old = datetime.now(UTC) - timedelta(hours=1)
    claim_store.register_worker(
        service.db, "ghost:1:dead", host="ghost", pid=1, slots=2, now=old, version="0.0.1"
    )
    result = ok(cli("health", "--json"), 1)
    health = json.loads(result.stdout)
    assert health["healthy"] is False
    [workers] = [c for c in health["checks"] if c["name"] == "workers"]
    assert workers["ok"] is False
    assert "ghost:1:dead" in workers["detail"]
    text = ok(cli("health"), 1).stdout
    assert any(line.startswith("FAIL workers") for line in text.splitlines())


def test_health_fails_when_jobs_wait_and_no_worker_lives(cli, echo):
    submit(cli, echo)
    health = json.loads(ok(cli("health", "--json"), 1).stdout)
    [workers] = [c for c in health["checks"] if c["name"] == "workers"]
    assert "1 job(s) queued" in workers["detail"]


def test_health_is_ok_with_a_live_worker(cli, echo, start_pool):
    start_pool()
    health = as_json(cli("health", "--json"))
    [workers] = [c for c in health["checks"] if c["name"] == "workers"]
    assert workers["detail"].startswith("1 alive")


def test_status_prints_an_overview(cli, echo, fails, settings):
    submit(cli, echo)
    out = ok(cli("status")).stdout
    assert out.startswith(f"opsconsole on {'sqlite' if 'sqlite' in settings.db else 'postgresql'}:")
    assert "queued 1" in out
    assert "templates (2): echo, fails" in out


def test_bare_command_without_a_terminal_says_how_to_script_instead(cli):
    """The console needs a terminal; a pipe gets one line and exit 2, not a broken screen."""
    result = cli()
    assert result.exit_code == 2
    assert "needs a terminal" in result.stderr
    assert "Traceback" not in result.stderr
