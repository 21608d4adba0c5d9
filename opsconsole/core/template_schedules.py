"""Template schedules: a template's ``schedule:`` block kept as a schedule named like it.

The only place that makes the store's template schedules follow the catalog: added when a
block appears, changed when it changes, removed when no template declares it. The engine's
tick calls ``sync`` when the catalog changed; an operator cannot remove such a schedule by
hand (``SchedulesMixin.remove_schedule`` says to edit the template).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconsole.core.errors import OpsError
from opsconsole.core.schedules import ScheduleRequest
from opsconsole.core.store import schedules as store

if TYPE_CHECKING:
    from opsconsole.core.catalog import Catalog
    from opsconsole.core.fire_plan import FireTimes
    from opsconsole.core.schedules import SchedulesMixin


def sync(svc: SchedulesMixin, catalog: Catalog, *, times: FireTimes) -> tuple[list[str], list[str]]:
    """Make the store's template schedules what the catalog's ``schedule:`` blocks
    declare: add new ones, change changed ones, remove those no template declares now.
    Returns what it did and what it refused, one line each (for the worker's log)."""
    done: list[str] = []
    problems: list[str] = []
    declared = {n: t for n, t in catalog.templates.items() if t.schedule is not None}
    stored = {r["name"]: r for r in store.list_all(svc.db) if r["origin"] == "template"}
    now, actor = svc.now(), "catalog"
    for name in stored:
        if name not in declared:
            store.remove(svc.db, name, actor=actor, now=now)
            done.append(f"removed schedule {name}: its template declares none now")
    taken = set(store.names(svc.db))
    for name, tpl in declared.items():
        spec = tpl.schedule
        assert spec is not None
        req = ScheduleRequest(
            name=name,
            template=name,
            params=spec.params,
            cron=spec.cron,
            tz=spec.tz,
            every=spec.every,
            jitter=spec.jitter,
            catchup=spec.catchup,
            overlap=spec.overlap,
        )
        try:
            want = svc.schedule_row(req, origin="template", times=times)
        except OpsError as exc:
            problems.append(f"template {name}: its schedule is refused: {exc}")
            continue
        if name not in stored:
            if name in taken:
                problems.append(
                    f"template {name}: its schedule is not made: a schedule of that name "
                    "was added by hand (remove it to let the template's take its place)"
                )
                continue
            store.insert(svc.db, want, actor=actor, now=now)
            done.append(f"added schedule {name} from its template")
            continue
        have = stored[name]
        keys = ("params", "cron", "tz", "every_s", "jitter_s", "catchup", "overlap")
        if all(have[k] == want[k] for k in keys):
            continue
        changes = {k: want[k] for k in (*keys, "secret_blob")}
        if (have["cron"], have["tz"], have["every_s"]) != (
            want["cron"],
            want["tz"],
            want["every_s"],
        ):
            changes["next_fire_at"] = want["next_fire_at"]
        store.update_declared(svc.db, name, changes, actor=actor, now=now)
        done.append(f"changed schedule {name} as its template says")
    return done, problems
