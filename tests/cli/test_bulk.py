"""Bulk ``jobs cancel`` / ``jobs retry`` by filter: exactly the matches, one event each."""

from __future__ import annotations

import json

from cli_support import as_json, ok, one_error_line, submit
from support import write_template


def _state(cli, job_id: str) -> str:
    return as_json(cli("jobs", "show", job_id, "--json"))["state"]


def test_bulk_cancel_acts_on_exactly_the_filtered_set(cli, echo, catalog):
    write_template(catalog, "other", "runner: shell\ncommand: ['true']\n")
    tagged = [submit(cli, echo, "--tag", "web")["id"] for _ in range(3)]
    untagged = submit(cli, echo)["id"]
    other = submit(cli, "other", "--tag", "web")["id"]
    out = as_json(
        cli(
            "jobs",
            "cancel",
            "--state",
            "queued",
            "--template",
            echo,
            "--tag",
            "web",
            "--yes",
            "--json",
        )
    )
    assert sorted(j["job"] for j in out["jobs"]) == sorted(tagged)
    assert (out["action"], out["acted"], out["skipped"]) == ("cancel", 3, 0)
    assert all(j["acted"] and j["state"] == "cancelled" for j in out["jobs"])
    assert [_state(cli, j) for j in tagged] == ["cancelled"] * 3
    assert _state(cli, untagged) == "queued"
    assert _state(cli, other) == "queued"
    for job_id in tagged:  # one audited event per job, by the normal verb
        events = as_json(cli("audit", "--job", job_id, "--action", "cancel", "--json"))["events"]
        assert [e["kind"] for e in events] == ["cancelled"]


def test_bulk_cancel_prints_a_summary_line(cli, echo):
    for _ in range(2):
        submit(cli, echo)
    out = ok(cli("jobs", "cancel", "--template", echo, "--yes")).stdout
    assert out.strip() == "cancelled 2 jobs"


def test_bulk_retry_of_failed_jobs(cli, fails, echo):
    failed = [submit(cli, fails)["id"] for _ in range(2)]
    ok(cli("worker", "--once"), 1)  # runs every ready job
    assert [_state(cli, j) for j in failed] == ["failed", "failed"]
    queued = submit(cli, echo)["id"]
    out = as_json(cli("jobs", "retry", "--state", "failed", "--since", "1h", "--yes", "--json"))
    assert sorted(j["job"] for j in out["jobs"]) == sorted(failed)
    assert [_state(cli, j) for j in failed] == ["queued", "queued"]
    assert _state(cli, queued) == "queued"


def test_bulk_retry_skips_a_job_that_needs_its_secrets_and_exits_1(cli, secret, fails, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret")
    plain = submit(cli, fails)["id"]
    needs = submit(cli, secret, "-p", f"token=@{token}")["id"]
    ok(cli("worker", "--once"), 1)  # runs every ready job
    result = ok(cli("jobs", "retry", "--state", "failed", "--yes"), 1)
    line = result.stdout.strip()
    assert line.startswith("retried 1 job; 1 skipped: ")
    assert needs in line and "secret" in line
    assert _state(cli, plain) == "queued"
    assert _state(cli, needs) == "failed"
    assert "s3cret" not in result.output


def test_a_job_and_a_filter_together_is_one_usage_error(cli, echo):
    job = submit(cli, echo)["id"]
    result = ok(cli("jobs", "cancel", job, "--state", "queued", "--yes"), 2)
    assert "not both" in one_error_line(result)
    assert _state(cli, job) == "queued"
    assert "not both" in one_error_line(ok(cli("jobs", "retry", job, "--since", "1h"), 2))


def test_neither_a_job_nor_a_filter_is_a_usage_error(cli):
    assert "filters" in one_error_line(ok(cli("jobs", "cancel"), 2))


def test_without_a_terminal_and_without_yes_it_refuses(cli, echo):
    jobs = [submit(cli, echo)["id"] for _ in range(2)]
    result = ok(cli("jobs", "cancel", "--state", "queued"), 2)
    line = one_error_line(result)
    assert "2 jobs match" in line and "--yes" in line
    assert [_state(cli, j) for j in jobs] == ["queued", "queued"]


def test_more_matches_than_the_limit_are_refused_until_it_is_raised(cli, echo):
    jobs = [submit(cli, echo)["id"] for _ in range(3)]
    line = one_error_line(
        ok(cli("jobs", "cancel", "--state", "queued", "--limit", "2", "--yes"), 2)
    )
    assert "more than 2 jobs match" in line and "--limit" in line
    assert [_state(cli, j) for j in jobs] == ["queued"] * 3
    out = as_json(cli("jobs", "cancel", "--state", "queued", "--limit", "3", "--yes", "--json"))
    assert out["acted"] == 3


def test_a_state_the_verb_does_not_act_from_is_refused(cli):
    line = one_error_line(ok(cli("jobs", "retry", "--state", "queued", "--yes"), 2))
    assert "not on queued jobs" in line
    assert "unknown state" in one_error_line(ok(cli("jobs", "cancel", "--state", "nope"), 2))


def test_no_match_is_not_an_error(cli, echo):
    result = ok(cli("jobs", "cancel", "--template", "nothing-here", "--yes"))
    assert "no jobs match" in result.stderr
    out = as_json(cli("jobs", "cancel", "--template", "nothing-here", "--yes", "--json"))
    assert out == {"action": "cancel", "acted": 0, "skipped": 0, "jobs": []}
    json.dumps(out)
