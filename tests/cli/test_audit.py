"""``opsconsole audit``: every action, newest first, filtered and keyset-paged."""

from __future__ import annotations

import pytest
from cli_support import as_json, ok, one_error_line, submit

from opsconsole.core.identity import os_user


def test_audit_lists_actions_newest_first_with_actor(cli, echo):
    job = submit(cli, echo)["id"]
    ok(cli("jobs", "priority", job, "high"))
    ok(cli("jobs", "cancel", job, "--reason", "wrong version"))
    events = as_json(cli("audit", "--json"))["events"]
    assert [e["kind"] for e in events] == ["cancelled", "priority_changed", "submitted"]
    assert {e["actor"] for e in events} == {os_user()}
    assert events[0]["message"] == "wrong version"
    assert events[0]["state"] == "cancelled" and events[0]["job"] == job
    out = ok(cli("audit")).stdout
    assert "wrong version" in out and "priority_changed" in out


def test_audit_filters_by_action_job_actor_and_since(cli, echo):
    a = submit(cli, echo)["id"]
    b = submit(cli, echo)["id"]
    ok(cli("jobs", "cancel", a))
    cancels = as_json(cli("audit", "--action", "cancel", "--json"))["events"]
    assert [(e["job"], e["kind"]) for e in cancels] == [(a, "cancelled")]
    assert [e["kind"] for e in as_json(cli("audit", "--job", b, "--json"))["events"]] == [
        "submitted"
    ]
    assert as_json(cli("audit", "--actor", "nobody-at-all", "--json"))["events"] == []
    assert len(as_json(cli("audit", "--since", "1h", "--json"))["events"]) == 3
    # an event kind names itself
    assert len(as_json(cli("audit", "--action", "submitted", "--json"))["events"]) == 2


def test_audit_pages_by_key(cli, echo):
    jobs = [submit(cli, echo)["id"] for _ in range(5)]
    first = as_json(cli("audit", "--limit", "2", "--json"))
    assert [e["job"] for e in first["events"]] == [jobs[4], jobs[3]]
    assert first["next_before"] == first["events"][-1]["id"]
    second = as_json(cli("audit", "--limit", "2", "--before", str(first["next_before"]), "--json"))
    assert [e["job"] for e in second["events"]] == [jobs[2], jobs[1]]
    last = as_json(cli("audit", "--limit", "2", "--before", str(second["next_before"]), "--json"))
    assert [e["job"] for e in last["events"]] == [jobs[0]] and last["next_before"] is None
    text = ok(cli("audit", "--limit", "2"))
    assert f"--before {first['next_before']}" in text.stderr


def test_a_bulk_cancel_shows_one_event_per_job_in_the_audit(cli, echo):
    jobs = [submit(cli, echo)["id"] for _ in range(3)]
    ok(cli("jobs", "cancel", "--state", "queued", "--reason", "freeze", "--yes"))
    events = as_json(cli("audit", "--action", "cancel", "--json"))["events"]
    assert sorted(e["job"] for e in events) == sorted(jobs)
    assert {e["message"] for e in events} == {"freeze"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--action", "explode"), "unknown action"),
        (("--since", "soon"), "duration"),
        (("--limit", "0"), "limit"),
        (("--job", "zzzzzz"), "no job"),
    ],
)
def test_bad_audit_input_is_one_line(cli, echo, args, words):
    submit(cli, echo)
    result = cli("audit", *args)
    assert result.exit_code in (2, 3)
    assert words in one_error_line(result).lower()
