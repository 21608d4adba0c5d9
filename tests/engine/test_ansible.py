"""The Ansible runner on real ansible-runner (local connection): streaming, grid, recap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible_support import (
    REPO,
    cells,
    final,
    out_lines,
    with_samples,
)

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState

pytestmark = pytest.mark.slow

S = JobState


def test_site_ping_sample_streams_fills_the_grid_and_recaps(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    with_samples(catalog)
    (catalog / "templates" / "site-ping.yaml").write_text(
        (REPO / "data/templates/site-ping.yaml").read_text()
    )
    start_pool()
    job = service.submit(SubmitRequest("site-ping", {"message": "hi there"})).id
    view = final(service, job)
    assert view.state == S.SUCCEEDED, "\n".join(out_lines(service, job)[-15:])
    lines = out_lines(service, job)
    assert any("TASK [Ping]" in ln for ln in lines)
    assert any('"msg": "hi there"' in ln for ln in lines)
    assert not any(ln.startswith("::") or ln.startswith("{") for ln in lines)
    recap = view.result["recap"]
    assert set(recap) == {"web1", "web2", "db1"}
    assert all(r["ok"] == 3 and r["failed"] == 0 for r in recap.values())
    grid = cells(service, job)
    assert {(c["seq"], c["host"], c["status"]) for c in grid} == {
        (seq, host, "ok") for seq in (0, 1, 2) for host in ("web1", "web2", "db1")
    }
    assert {c["task"] for c in grid} == {"Ping", "Who am I", "Say the message"}
