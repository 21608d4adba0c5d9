"""What the banners under the header say: the store away, a worker that cannot work, a
broken catalog, a break-glass run nobody has reviewed. The only place their wording lives;
the app only shows or hides them.

Every text here comes from outside (store errors, worker problems, file names), so each is
made visible (``core.text.visible``) and the banners render it as plain text.
"""

from __future__ import annotations

from opsconsole.core.reviews import ReviewView
from opsconsole.core.text import visible
from opsconsole.core.views import WorkerView


def store_text(ok: bool, message: str) -> str:
    """'' while the store answers; else why not, and that the console keeps trying."""
    if ok:
        return ""
    reason = message.removeprefix("store unavailable: ")  # StoreUnavailable says it too
    if reason.startswith("the store has not answered"):
        return f"{reason}; still waiting (the screen stays usable)"
    if reason.startswith("store "):  # StoreUnavailable names the store
        return f"{reason} (retrying)"
    return f"store unavailable: {reason} (retrying)"


def workers_text(workers: list[WorkerView]) -> str:
    """A pool that is alive but cannot work is as urgent as a store that is away."""
    troubled = [w for w in workers if w.alive and w.problem]
    if not troubled:
        return ""
    first = troubled[0]
    more = f" (and {len(troubled) - 1} more worker(s))" if len(troubled) > 1 else ""
    return visible(f"worker {first.id} cannot work: {first.problem}{more}  (W: workers)")


def catalog_text(problems: list[str]) -> str:
    """The first catalog problem in full, how many more, and the key that lists them all.

    A template that does not load cannot be submitted, so this stays up until the catalog
    is fixed: the operator sees it here, not only on the stderr of some CLI command.
    """
    if not problems:
        return ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return visible(f"catalog: {count}: {problems[0]}{more}  (T: templates)")


def review_text(reviews: list[ReviewView]) -> str:
    """A break-glass run skipped its approvers: every console says so until another
    person acknowledges it (``opsconsole reviews ack ID --comment TEXT``)."""
    if not reviews:
        return ""
    first = reviews[0]
    more = f" (and {len(reviews) - 1} more)" if len(reviews) > 1 else ""
    return visible(
        f"break-glass: job {first.job_id} ran without approval, by {first.broken_by}: "
        f"{first.reason}{more}; unreviewed: opsconsole reviews ack {first.id} --comment TEXT"
    )


def webhooks_text(warnings: list[str]) -> str:
    """A webhook that disabled itself stops telling anyone about failures: say so here."""
    if not warnings:
        return ""
    more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
    return visible(warnings[0] + more)
