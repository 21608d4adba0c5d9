"""The hosts grid read model: order, pinning, totals, the running task, what is left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hosts_support import ansible_template, cells, ended, recap, shell_template, started

from opsconsole.core.clock import SettableClock
from opsconsole.core.errors import InvalidParams, NotFound
from opsconsole.core.hosts import NO_TASK, STOPPED, Totals, build_grid
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState

S = JobState


def row(seq: int, host: str, status: str, task: str = "", play: str = "p", msg: str = "") -> Any:
    return {"seq": seq, "host": host, "status": status, "task": task, "play": play, "msg": msg}


def grid(rows: list[Any], state: JobState = S.RUNNING, **kw: Any) -> Any:
    return build_grid(rows, job_id="j1", state=state, attempt=1, **kw)


def test_failed_and_unreachable_hosts_are_pinned_then_changed_then_the_rest_by_name() -> None:
    g = grid(
        [
            row(0, "zeta", "ok"),
            row(0, "alpha", "ok"),
            row(0, "mid", "changed"),
            row(0, "bravo", "changed"),
            row(0, "yak", "unreachable"),
            row(0, "charlie", "ok"),
            row(1, "charlie", "failed"),
        ]
    )
    assert [h.name for h in g.hosts] == ["charlie", "yak", "bravo", "mid", "alpha", "zeta"]
    assert [h.pinned for h in g.hosts] == [True, True, False, False, False, False]
    assert g.pinned == 2


def test_tasks_in_run_order_with_their_play_names() -> None:
    g = grid(
        [
            row(2, "a", "ok", "restart", "Web"),
            row(0, "a", "ok", "gather", "Setup"),
            row(1, "b", "skipped", "install", "Setup"),
        ]
    )
    assert [(t.seq, t.name, t.play) for t in g.tasks] == [
        (0, "gather", "Setup"),
        (1, "install", "Setup"),
        (2, "restart", "Web"),
    ]
    assert g.cell("b", 1) is not None and g.cell("b", 1).status == "skipped"
    assert g.cell("a", 1) is None


def test_totals_count_like_ansibles_recap_ok_includes_changed_and_ignored() -> None:
    g = grid(
        [
            row(0, "a", "ok"),
            row(1, "a", "changed"),
            row(2, "a", "ignored"),
            row(3, "a", "skipped"),
            row(0, "b", "failed"),
            row(0, "c", "unreachable"),
            row(4, "a", "running"),
        ]
    )
    a = g.hosts[2]
    assert a.name == "a"
    assert a.totals == Totals(ok=3, changed=1, skipped=1, ignored=1)
    assert g.totals == Totals(ok=3, changed=1, failed=1, unreachable=1, skipped=1, ignored=1)
    assert g.totals.line() == "ok=3 changed=1 failed=1 unreachable=1 skipped=1 ignored=1"
    assert not g.from_recap


def test_the_running_task_is_the_newest_a_host_works_on() -> None:
    g = grid([row(0, "a", "ok"), row(1, "a", "running"), row(1, "b", "ok"), row(2, "b", "running")])
    assert g.current is not None and g.current.seq == 2
    assert [t.running for t in g.tasks] == [False, True, True]


def test_a_cell_running_when_the_job_ended_is_stopped_and_nothing_runs() -> None:
    g = grid([row(0, "a", "ok"), row(1, "a", "running")], state=S.CANCELLED)
    assert g.current is None
    assert g.cell("a", 1).status == STOPPED


def test_the_recap_of_an_ended_job_replaces_the_counts_and_adds_hosts_without_cells() -> None:
    rows = [row(0, "a", "failed"), row(0, "b", "ok")]
    given = {
        "a": recap(ok=1, rescued=1),  # the failure was rescued: not pinned
        "b": recap(ok=1, changed=1),
        "gone": recap(unreachable=1),
    }
    g = grid(rows, state=S.PARTIAL, recap=given)
    assert g.from_recap
    assert [h.name for h in g.hosts] == ["gone", "b", "a"]
    assert g.totals == Totals(ok=2, changed=1, unreachable=1, rescued=1)
    # while the job runs, a recap (there is none yet) is not trusted
    live = grid(rows, state=S.RUNNING, recap=given)
    assert not live.from_recap and [h.name for h in live.hosts] == ["a", "b"]


def test_a_recap_with_junk_counts_counts_them_as_zero() -> None:
    g = grid([], state=S.FAILED, recap={"a": {"ok": "3", "failed": True, "changed": -2}})
    assert g.totals == Totals()


def test_an_empty_grid_says_no_task_has_started() -> None:
    g = grid([])
    assert g.empty and g.message == NO_TASK and g.current is None
    assert g.to_dict()["message"] == NO_TASK
    assert grid([row(0, "a", "running")]).message is None


def test_window_keeps_the_last_tasks_and_the_first_hosts_and_counts_the_rest() -> None:
    rows = [row(seq, f"h{n}", "ok") for seq in range(10) for n in range(6)]
    rows.append(row(3, "h5", "failed"))
    g = grid(rows)
    w = g.window(max_hosts=2, max_tasks=4)
    assert [t.seq for t in w.tasks] == [6, 7, 8, 9]
    assert [h.name for h in w.hosts] == ["h5", "h0"]  # the pinned host stays in view
    assert (w.hidden_tasks, w.hidden_hosts) == (6, 4)
    assert w.totals == g.totals
    assert g.window(max_hosts=100, max_tasks=100) == g
    assert g.window(max_tasks=0).tasks == ()


def test_to_dict_has_hosts_tasks_cells_recap_and_totals() -> None:
    g = grid([row(0, "a", "changed", "t0", msg="done"), row(0, "b", "failed", "t0", msg="boom")])
    d = g.to_dict()
    assert [h["name"] for h in d["hosts"]] == ["b", "a"]
    assert d["tasks"] == [{"seq": 0, "name": "t0", "play": "p", "running": False}]
    assert {(c["host"], c["status"], c["msg"]) for c in d["cells"]} == {
        ("a", "changed", "done"),
        ("b", "failed", "boom"),
    }
    assert d["recap"]["b"]["failed"] == 1 and d["totals"]["changed"] == 1
    assert d["totals_from"] == "cells"


# -- through the service ---------------------------------------------------------------


@pytest.fixture
def site(catalog: Path) -> str:
    return ansible_template(catalog)


def test_host_grid_reads_the_newest_attempt_live(
    clocked: OpsService, clock: SettableClock, site: str
) -> None:
    job = started(clocked, site)
    assert clocked.get(job).runner == "ansible"
    assert clocked.host_grid(job).message == NO_TASK
    cells(clocked, job, (0, "web1", "ok"), (0, "web2", "running"))
    g = clocked.host_grid(job[:4])
    assert g.attempt == 1 and g.template == site and not g.final
    assert g.current is not None and g.current.name == "step 1"
    cells(clocked, job, (0, "web2", "unreachable", "ssh: connect refused"))
    g = clocked.host_grid(job)
    assert [h.name for h in g.hosts] == ["web2", "web1"]
    assert g.cell("web2", 0).msg == "ssh: connect refused"


def test_host_grid_of_an_ended_job_uses_its_recap(
    clocked: OpsService, clock: SettableClock, site: str
) -> None:
    job = started(clocked, site)
    cells(clocked, job, (0, "web1", "ok"), (0, "db1", "failed"), (1, "web1", "running"))
    ended(clocked, job, S.PARTIAL, {"web1": recap(ok=1), "db1": recap(failed=1)})
    g = clocked.host_grid(job)
    assert g.final and g.from_recap and g.current is None
    assert g.cell("web1", 1).status == STOPPED
    assert g.totals == Totals(ok=1, failed=1)


def test_an_earlier_attempt_can_be_asked_for_and_a_missing_one_is_refused(
    clocked: OpsService, clock: SettableClock, site: str
) -> None:
    job = started(clocked, site)
    cells(clocked, job, (0, "web1", "failed", "first try"))
    ended(clocked, job, S.FAILED, {"web1": recap(failed=1)})
    clocked.retry(job)
    assert claim_again(clocked, clock) == job
    cells(clocked, job, (0, "web1", "running"), attempt=2)
    assert clocked.host_grid(job).attempt == 2
    first = clocked.host_grid(job, attempt=1)
    assert first.cell("web1", 0).msg == "first try"
    assert not first.from_recap  # the job's recap is the newest attempt's, not this one's
    with pytest.raises(InvalidParams, match="has no attempt 3"):
        clocked.host_grid(job, attempt=3)
    with pytest.raises(InvalidParams, match="has no attempt 0"):
        clocked.host_grid(job, attempt=0)


def claim_again(service: OpsService, clock: SettableClock) -> str:
    from opsconsole.core.store import claim as claim_store

    clock.advance(3600)  # past any retry backoff
    row = claim_store.claim(service.db, "w1", clock.now(), 30)
    assert row is not None
    return str(row["id"])


def test_a_job_that_is_not_an_ansible_job_has_no_grid(clocked: OpsService, catalog: Path) -> None:
    shell = shell_template(catalog)
    job = clocked.submit(SubmitRequest(shell)).id
    assert clocked.get(job).runner == "shell"
    with pytest.raises(InvalidParams, match=f"job {job} is not an Ansible job"):
        clocked.host_grid(job)
    with pytest.raises(NotFound):
        clocked.host_grid("zzzzzz")
