"""the database enforces the rules (PostgreSQL only; nothing on SQLite): group roles per
opsconsole role, grants, and triggers that hold four-eyes and the approval gate even for
someone at a psql prompt

Revision ID: 0007
Revises: 0006

Who a person is, in the database, is ``session_user``: the login role that peer
authentication (or a ``pg_ident.conf`` map) gave the connection; ``SET ROLE`` does not change
it. A session is *trusted* when it is a superuser, the owner of the tables (who migrates) or
a member of ``opsconsole_worker`` (the pools: they claim, finish, expire and park jobs for
everyone). Every other session is a person, and for a person the triggers below hold:

- a decision on a gate (``approvals``) is recorded in the person's own name, only while the
  job awaits approval in that round; an approval needs ``opsconsole_approver`` (and, when the
  template lists approvers, to be one of them) and is never the submitter's own unless the
  template allows self-approval; decisions are never changed, and deleted only with a
  finished job (retention);
- a gated job leaves ``awaiting_approval`` for a runnable state only with the approvals its
  policy requires for the digest it names (or a break-glass decision for it), never goes
  from a final state straight back to a runnable one, and is submitted awaiting approval;
- a person moves a job only as their verbs do (retry, cancel, release, wait, approve,
  break the glass, reject): never claims, finishes, requeues or parks one, never submits
  one in any but a first state, and never changes a finished job's record but to retry it;
- a person never changes a job's submitter, nor its approval policy but to a stricter one
  in a new round (the catalog's template changed while the job awaited approval), and
  submits a job in their own name;
- a person's event in the audit trail is in their own name (or in nobody's: what their
  action set off); a break-glass review is opened in one's own name and acknowledged once,
  by another person with the approver role.

A refusal is SQLSTATE 42501 (``insufficient_privilege``) with one line saying why.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

GROUPS = (
    "opsconsole_viewer",
    "opsconsole_operator",
    "opsconsole_approver",
    "opsconsole_admin",
    "opsconsole_worker",
)
"""Group roles (NOLOGIN): people's login roles and the workers' role are made members."""

_LADDER = (
    ("opsconsole_viewer", "opsconsole_operator"),
    ("opsconsole_operator", "opsconsole_approver"),
    ("opsconsole_approver", "opsconsole_admin"),
)
"""Each role may do what the ones below it may (``core/access.py``'s ``Role``)."""

RUNNABLE = "('queued', 'scheduled', 'waiting', 'running')"
INITIAL = "('awaiting_approval', 'waiting', 'scheduled', 'queued')"
RETRIED = "('queued', 'awaiting_approval')"
_PERSON_MOVES = (
    # retry: a job that ended badly starts again (a gated one awaits a new approval)
    *(
        (old, new)
        for old in ("failed", "timed_out", "cancelled", "interrupted", "partial")
        for new in ("queued", "awaiting_approval")
    ),
    # cancel a pending job; dependencies release or hold a pending job
    *((old, "cancelled") for old in ("waiting", "scheduled", "queued")),
    ("waiting", "queued"),
    ("waiting", "scheduled"),
    ("queued", "waiting"),
    ("scheduled", "waiting"),
    # approve, break the glass (checked against the approvals), reject
    *(("awaiting_approval", new) for new in ("queued", "scheduled", "waiting", "rejected")),
)
"""The state changes a person's verbs make (``core/states.py``'s MOVES of retry, cancel,
release, wait, approve, break_glass and reject); claim, finish, requeue and park are the
workers'."""
MOVES = "(" + ", ".join(f"('{a}', '{b}')" for a, b in _PERSON_MOVES) + ")"
FINAL = "('succeeded', 'partial', 'failed', 'timed_out', 'cancelled', 'rejected', 'interrupted')"

_FUNCTIONS = [
    # who is trusted: the owner of the tables, a superuser, or a worker. PL/pgSQL, not SQL:
    # its plans are kept for the session, and every update of a job asks it first
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_trusted() RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  RETURN pg_has_role(session_user,
                     (SELECT relowner FROM pg_class WHERE oid = '{s}.jobs'::regclass), 'MEMBER')
      OR coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), false)
      OR (to_regrole('opsconsole_worker') IS NOT NULL
          AND pg_has_role(session_user, 'opsconsole_worker', 'MEMBER'));
END $$""",
    # does a role of this name exist and is the session's login a member of it
    # (PL/pgSQL: SQL does not promise to look for the role before asking about it)
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_member(role text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  IF to_regrole(quote_ident(role)) IS NULL THEN
    RETURN false;
  END IF;
  RETURN pg_has_role(session_user, role, 'MEMBER');
END $$""",
    # is ``new`` an approval policy at least as strict as ``old`` (the catalog's template
    # changed while a job awaited approval): as many approvers or more, from no wider a
    # list, with no self-approval or break-glass that ``old`` did not allow
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_stricter(old jsonb, new jsonb)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $$
DECLARE
  old_list jsonb := coalesce(old -> 'approvers', '[]'::jsonb);
  new_list jsonb := coalesce(new -> 'approvers', '[]'::jsonb);
BEGIN
  IF jsonb_typeof(old) IS DISTINCT FROM 'object' OR jsonb_typeof(new) IS DISTINCT FROM 'object'
     OR jsonb_typeof(old_list) <> 'array' OR jsonb_typeof(new_list) <> 'array' THEN
    RETURN jsonb_typeof(old) IS DISTINCT FROM 'object' AND jsonb_typeof(new) = 'object';
  END IF;
  RETURN coalesce((new ->> 'required')::integer, 1) >= coalesce((old ->> 'required')::integer, 1)
     AND (NOT coalesce((new ->> 'self_approval')::boolean, false)
          OR coalesce((old ->> 'self_approval')::boolean, false))
     AND (NOT coalesce((new ->> 'break_glass')::boolean, false)
          OR coalesce((old ->> 'break_glass')::boolean, false))
     AND (jsonb_array_length(old_list) = 0
          OR (jsonb_array_length(new_list) > 0 AND new_list <@ old_list));
END $$""",
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_refuse(why text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the database refuses: %', why USING ERRCODE = 'insufficient_privilege';
END $$""",
    # a decision on a gate: in one's own name, with the role, never one's own job
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_check_decision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
DECLARE
  who text := session_user;
  job record;
  policy jsonb;
  approvers jsonb;
BEGIN
  IF opsconsole_trusted() THEN
    RETURN NEW;
  END IF;
  IF NEW.actor IS DISTINCT FROM who THEN
    PERFORM opsconsole_refuse(format('%s may not record a decision in the name of %s',
                                     who, NEW.actor));
  END IF;
  SELECT id, state, gate_round, submitted_by, spec INTO job FROM jobs WHERE id = NEW.job_id;
  IF NOT FOUND THEN
    PERFORM opsconsole_refuse(format('no job %s', NEW.job_id));
  END IF;
  IF job.state <> 'awaiting_approval' OR job.gate_round <> NEW.round THEN
    PERFORM opsconsole_refuse(format('job %s is not awaiting approval in round %s',
                                     job.id, NEW.round));
  END IF;
  policy := (job.spec::jsonb) -> 'approval';
  IF NEW.decision = 'approve' THEN
    IF NOT opsconsole_member('opsconsole_approver') THEN
      PERFORM opsconsole_refuse(format('%s may not approve jobs: needs the opsconsole_approver '
                                       'role', who));
    END IF;
    IF job.submitted_by = who
       AND NOT coalesce((policy ->> 'self_approval')::boolean, false) THEN
      PERFORM opsconsole_refuse(format('%s submitted job %s and may not approve it (four eyes)',
                                       who, job.id));
    END IF;
    approvers := coalesce(policy -> 'approvers', '[]'::jsonb);
    IF jsonb_typeof(approvers) = 'array' AND jsonb_array_length(approvers) > 0
       AND NOT approvers ? ('user:' || who)
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(approvers) AS a(entry)
                       WHERE a.entry LIKE 'group:%'
                         AND opsconsole_member(substr(a.entry, 7))) THEN
      PERFORM opsconsole_refuse(format('%s is not an approver of job %s', who, job.id));
    END IF;
  ELSIF NEW.decision = 'reject' THEN
    IF NOT opsconsole_member('opsconsole_approver') THEN
      PERFORM opsconsole_refuse(format('%s may not reject jobs: needs the opsconsole_approver '
                                       'role', who));
    END IF;
  ELSIF NEW.decision = 'withdraw' THEN
    IF job.submitted_by IS DISTINCT FROM who THEN
      PERFORM opsconsole_refuse(format('only the submitter of job %s may withdraw it', job.id));
    END IF;
  ELSIF NEW.decision = 'break_glass' THEN
    IF NOT opsconsole_member('opsconsole_operator') THEN
      PERFORM opsconsole_refuse(format('%s may not break the glass: needs the '
                                       'opsconsole_operator role', who));
    END IF;
    IF NOT coalesce((policy ->> 'break_glass')::boolean, false) THEN
      PERFORM opsconsole_refuse(format('the template of job %s does not allow break-glass',
                                       job.id));
    END IF;
  ELSIF NEW.decision = 'void' THEN
    -- voiding only takes approvals away: any person who may act on jobs may record it
    IF NOT opsconsole_member('opsconsole_operator') THEN
      PERFORM opsconsole_refuse(format('%s may not act on jobs', who));
    END IF;
  ELSE
    PERFORM opsconsole_refuse(format('only a worker records the decision ''%s''', NEW.decision));
  END IF;
  RETURN NEW;
END $$""",
    # decisions are history: never changed; deleted only with a finished job
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_keep_decision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
BEGIN
  IF opsconsole_trusted() THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    PERFORM opsconsole_refuse('a decision on a gate is never changed');
  END IF;
  IF EXISTS (SELECT 1 FROM jobs WHERE id = OLD.job_id AND state NOT IN {final}) THEN
    PERFORM opsconsole_refuse(format('the decisions on job %s go only with the finished job',
                                     OLD.job_id));
  END IF;
  RETURN OLD;
END $$""",
    # a job: submitted in one's own name, gated jobs awaiting approval
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_check_submit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
BEGIN
  IF opsconsole_trusted() THEN
    RETURN NEW;
  END IF;
  IF NEW.submitted_by IS DISTINCT FROM session_user THEN
    PERFORM opsconsole_refuse(format('%s may not submit a job in the name of %s',
                                     session_user, NEW.submitted_by));
  END IF;
  IF NEW.state NOT IN {initial} THEN
    PERFORM opsconsole_refuse(format('a job is submitted awaiting approval, waiting, '
                                     'scheduled or queued, not %s', NEW.state));
  END IF;
  IF jsonb_typeof((NEW.spec::jsonb) -> 'approval') = 'object'
     AND NEW.phase IS DISTINCT FROM 'plan'
     AND (NEW.state <> 'awaiting_approval' OR NEW.approved_digest IS NOT NULL
          OR NEW.break_glass) THEN
    PERFORM opsconsole_refuse(format('job %s is gated: it is submitted awaiting approval',
                                     NEW.id));
  END IF;
  RETURN NEW;
END $$""",
    # the audit trail: a person's event is in their own name, or in nobody's (what their
    # action set off, e.g. dependents released)
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_check_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
BEGIN
  IF opsconsole_trusted() OR NEW.actor IN ('', session_user) THEN
    RETURN NEW;
  END IF;
  PERFORM opsconsole_refuse(format('%s may not write an event in the name of %s',
                                   session_user, NEW.actor));
  RETURN NEW;
END $$""",
    # a break-glass review: opened by who broke the glass, acknowledged by another approver
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_check_review() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
BEGIN
  IF opsconsole_trusted() THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.broken_by IS DISTINCT FROM session_user OR NEW.acked_by IS NOT NULL THEN
      PERFORM opsconsole_refuse(format('%s may open a review only in their own name',
                                       session_user));
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.broken_by IS DISTINCT FROM OLD.broken_by OR NEW.job_id IS DISTINCT FROM OLD.job_id
     OR NEW.reason IS DISTINCT FROM OLD.reason OR OLD.acked_by IS NOT NULL THEN
    PERFORM opsconsole_refuse(format('review %s is history: only its acknowledgement is '
                                     'written, once', OLD.id));
  END IF;
  IF NEW.acked_by IS DISTINCT FROM session_user THEN
    PERFORM opsconsole_refuse(format('%s may not acknowledge in the name of %s',
                                     session_user, NEW.acked_by));
  END IF;
  IF NEW.acked_by = OLD.broken_by THEN
    PERFORM opsconsole_refuse(format('%s broke the glass and may not acknowledge its review '
                                     '(four eyes)', session_user));
  END IF;
  IF NOT opsconsole_member('opsconsole_approver') THEN
    PERFORM opsconsole_refuse(format('%s may not acknowledge reviews: needs the '
                                     'opsconsole_approver role', session_user));
  END IF;
  RETURN NEW;
END $$""",
    # a job's change: the gate opens only with its approvals
    """CREATE OR REPLACE FUNCTION {s}.opsconsole_check_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {s} AS $$
DECLARE
  policy jsonb := (OLD.spec::jsonb) -> 'approval';
  given integer;
BEGIN
  IF opsconsole_trusted() THEN
    RETURN NEW;
  END IF;
  IF NEW.submitted_by IS DISTINCT FROM OLD.submitted_by THEN
    PERFORM opsconsole_refuse(format('the submitter of job %s never changes', OLD.id));
  END IF;
  IF ((NEW.spec::jsonb) -> 'approval') IS DISTINCT FROM policy
     AND NOT (OLD.state = 'awaiting_approval' AND NEW.state = 'awaiting_approval'
              AND NEW.gate_round > OLD.gate_round
              AND opsconsole_stricter(policy, (NEW.spec::jsonb) -> 'approval')) THEN
    PERFORM opsconsole_refuse(format('the approval policy of job %s changes only by a worker, '
                                     'or to a stricter one in a new round', OLD.id));
  END IF;
  IF OLD.state IN {final} AND (NEW.state = OLD.state OR NEW.state NOT IN {retried}) THEN
    PERFORM opsconsole_refuse(format('job %s is finished: its record is history (a retry '
                                     'starts it again)', OLD.id));
  END IF;
  IF NEW.state <> OLD.state AND NOT ((OLD.state, NEW.state) IN {moves}) THEN
    PERFORM opsconsole_refuse(format('only a worker moves a job from %s to %s',
                                     OLD.state, NEW.state));
  END IF;
  IF NEW.state = 'rejected' AND NOT EXISTS (
      SELECT 1 FROM approvals
      WHERE job_id = OLD.id AND round = OLD.gate_round AND actor = session_user
        AND decision IN ('reject', 'withdraw')) THEN
    PERFORM opsconsole_refuse(format('job %s is rejected only with a decision that says so',
                                     OLD.id));
  END IF;
  IF NEW.state NOT IN {runnable} OR OLD.state IN {runnable}
     OR jsonb_typeof(policy) IS DISTINCT FROM 'object' OR NEW.phase = 'plan' THEN
    RETURN NEW;
  END IF;
  IF OLD.state <> 'awaiting_approval' THEN
    PERFORM opsconsole_refuse(format('job %s is gated: it goes back to awaiting approval, '
                                     'not to %s', OLD.id, NEW.state));
  END IF;
  IF NEW.approved_digest IS NULL THEN
    PERFORM opsconsole_refuse(format('job %s is gated: no approval names what it runs',
                                     OLD.id));
  END IF;
  IF NOT EXISTS (SELECT 1 FROM approvals
                 WHERE job_id = OLD.id AND round = OLD.gate_round AND decision = 'void') THEN
    IF NEW.break_glass AND EXISTS (
        SELECT 1 FROM approvals
        WHERE job_id = OLD.id AND round = OLD.gate_round AND decision = 'break_glass'
          AND digest = NEW.approved_digest) THEN
      RETURN NEW;
    END IF;
    SELECT count(DISTINCT actor) INTO given FROM approvals
    WHERE job_id = OLD.id AND round = OLD.gate_round AND decision = 'approve'
      AND digest = NEW.approved_digest AND actor <> OLD.submitted_by;
    IF coalesce((policy ->> 'self_approval')::boolean, false) THEN
      SELECT count(DISTINCT actor) INTO given FROM approvals
      WHERE job_id = OLD.id AND round = OLD.gate_round AND decision = 'approve'
        AND digest = NEW.approved_digest;
    END IF;
    IF given >= coalesce((policy ->> 'required')::integer, 1) THEN
      RETURN NEW;
    END IF;
  END IF;
  PERFORM opsconsole_refuse(format('job %s has not the approvals its gate needs (round %s)',
                                   OLD.id, OLD.gate_round));
  RETURN NEW;
END $$""",
]

_TRIGGERS = [
    ("approvals", "opsconsole_decision_rules", "BEFORE INSERT", "opsconsole_check_decision"),
    (
        "approvals",
        "opsconsole_decision_kept",
        "BEFORE UPDATE OR DELETE",
        "opsconsole_keep_decision",
    ),
    ("jobs", "opsconsole_submit_rules", "BEFORE INSERT", "opsconsole_check_submit"),
    ("jobs", "opsconsole_change_rules", "BEFORE UPDATE", "opsconsole_check_change"),
    ("job_events", "opsconsole_event_rules", "BEFORE INSERT", "opsconsole_check_event"),
    ("reviews", "opsconsole_review_rules", "BEFORE INSERT OR UPDATE", "opsconsole_check_review"),
]

_FUNCTION_NAMES = (
    "opsconsole_check_review()",
    "opsconsole_check_event()",
    "opsconsole_check_change()",
    "opsconsole_check_submit()",
    "opsconsole_keep_decision()",
    "opsconsole_check_decision()",
    "opsconsole_refuse(text)",
    "opsconsole_stricter(jsonb, jsonb)",
    "opsconsole_member(text)",
    "opsconsole_trusted()",
)


def _grants(schema: str) -> list[str]:
    """What each group may do with the tables; the triggers hold the rules within that."""
    s = f'"{schema}"'
    out = [f"GRANT USAGE ON SCHEMA {s} TO {', '.join(GROUPS)}"]
    for kind, what in (("TABLES", "SELECT"), ("SEQUENCES", "USAGE, SELECT")):
        out.append(f"GRANT {what} ON ALL {kind} IN SCHEMA {s} TO opsconsole_viewer")
        out.append(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT {what} ON {kind} TO opsconsole_viewer"
        )
    # operators write jobs, events, logs of their actions; never change a decision
    out.append(f"GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA {s} TO opsconsole_operator")
    out.append(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT INSERT, UPDATE ON TABLES "
        "TO opsconsole_operator"
    )
    out.append(
        f"REVOKE UPDATE ON {s}.approvals, {s}.job_events, {s}.alembic_version "
        "FROM opsconsole_operator"
    )
    out.append(f"REVOKE INSERT ON {s}.alembic_version FROM opsconsole_operator")
    # admins prune (retention deletes finished jobs and their history)
    out.append(f"GRANT DELETE ON ALL TABLES IN SCHEMA {s} TO opsconsole_admin")
    out.append(f"REVOKE DELETE ON {s}.alembic_version FROM opsconsole_admin")
    # workers do everything the pools do, for everyone
    out.append(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO opsconsole_worker"
    )
    out.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO opsconsole_worker")
    out.append(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE "
        "ON TABLES TO opsconsole_worker"
    )
    out.append(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES "
        "TO opsconsole_worker"
    )
    return out


def _make_groups() -> bool:
    """Create the group roles (cluster-wide: another database may have made them already);
    True when they all exist now, so the tables' owner can grant on its own tables to them."""
    bind = op.get_bind()
    may = bind.execute(
        sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if may:
        for name in GROUPS:
            # two databases of one cluster migrating at once race on the role's name
            op.execute(
                f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
    CREATE ROLE {name} NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""
            )
        for lower, upper in _LADDER:
            op.execute(f"GRANT {lower} TO {upper}")
    found = bind.execute(
        sa.text("SELECT count(*) FROM pg_roles WHERE rolname = ANY(:names)"),
        {"names": list(GROUPS)},
    ).scalar_one()
    if found < len(GROUPS):
        log.warning(
            "the migrating role may not create roles and the opsconsole_* group roles do not "
            "exist: no grants made, only the tables' owner may use the store (the rules "
            "hold); migrate as a role with CREATEROLE, or create the group roles first"
        )
        return False
    return True


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: one file, its permissions are the rules (core/access.py)
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    s = f'"{schema}"'
    for body in _FUNCTIONS:
        op.execute(
            body.format(
                s=s, final=FINAL, runnable=RUNNABLE, initial=INITIAL, retried=RETRIED, moves=MOVES
            )
        )
    op.execute(f"REVOKE ALL ON FUNCTION {s}.opsconsole_refuse(text) FROM PUBLIC")
    for table, name, when, func in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {when} ON {s}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {s}.{func}()"
        )
    if _make_groups():
        for statement in _grants(schema):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    s = f'"{schema}"'
    for table, name, _when, _func in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {s}.{table}")
    for func in _FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION IF EXISTS {s}.{func}")
    # the group roles stay: they are the cluster's, other databases may use them
    exists = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM pg_roles WHERE rolname = ANY(:names)"),
            {"names": list(GROUPS)},
        )
        .scalar_one()
    )
    if exists == len(GROUPS):
        for kind in ("TABLES", "SEQUENCES"):
            op.execute(f"REVOKE ALL ON ALL {kind} IN SCHEMA {s} FROM {', '.join(GROUPS)}")
