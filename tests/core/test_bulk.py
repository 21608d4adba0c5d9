"""``OpsService.bulk_select`` / ``bulk_act`` on a real store: each job's own rules apply."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support import write_template

from opsconsole.core.bulk import BulkRequest
from opsconsole.core.errors import InvalidParams
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import Verb
from opsconsole.core.store import queries


@pytest.fixture
def echo(catalog):
    write_template(catalog, "echo", "runner: shell\ncommand: ['true']\n")
    return "echo"


def test_a_job_that_moved_on_since_the_selection_is_skipped_not_forced(clocked, echo):
    ids = [clocked.submit(SubmitRequest(template=echo)).id for _ in range(3)]
    chosen = clocked.bulk_select(BulkRequest(Verb.CANCEL, states=("queued",)))
    assert sorted(chosen) == sorted(ids)
    clocked.cancel(ids[1], reason="by hand")  # another operator, between select and act
    result = clocked.bulk_act(Verb.CANCEL, chosen, reason="bulk")
    assert sorted(o.job for o in result.acted) == sorted([ids[0], ids[2]])
    [skipped] = result.skipped
    assert (skipped.job, skipped.state) == (ids[1], "cancelled")
    assert skipped.reason == "had already ended (cancelled)"
    assert result.summary() == (
        f"cancelled 2 jobs; 1 skipped: {ids[1]} had already ended (cancelled)"
    )
    # the hand-cancelled job keeps its own event and reason: nothing was forced over it
    events = [(e.kind, e.message) for e in clocked.get(ids[1], with_events=True).events or ()]
    assert events[-1] == ("cancelled", "by hand")
    assert all(message != "bulk" for _, message in events)


def test_a_retry_in_bulk_never_requeues_a_job_that_is_queued_again(clocked, echo):
    job = clocked.submit(SubmitRequest(template=echo)).id
    clocked.cancel(job)
    chosen = clocked.bulk_select(BulkRequest(Verb.RETRY, states=("cancelled",)))
    assert chosen == [job]
    clocked.retry(job)
    result = clocked.bulk_act(Verb.RETRY, chosen)
    assert [(o.job, o.acted, o.reason) for o in result.outcomes] == [(job, False, "is queued now")]


@pytest.mark.sqlite_only
def test_the_selection_is_served_by_an_index(clocked: OpsService, echo):
    for template, states in ((None, ("queued",)), (echo, ("queued", "scheduled"))):
        f = queries.JobFilter(states=states, template=template, tag="web")
        sql = str(
            queries.bulk_query(f, 101).compile(
                dialect=clocked.db.engine.dialect, compile_kwargs={"literal_binds": True}
            )
        )
        with clocked.db.engine.connect() as conn:
            plan = " ".join(r[-1] for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert "SCAN jobs" not in plan.replace("SCAN jobs USING", ""), plan


def test_a_bulk_action_needs_a_filter(clocked):
    with pytest.raises(InvalidParams, match="needs a filter"):
        clocked.bulk_select(BulkRequest(Verb.CANCEL))
    with pytest.raises(InvalidParams, match="only cancel and retry"):
        clocked.bulk_select(BulkRequest(Verb.APPROVE, states=("awaiting_approval",)))
