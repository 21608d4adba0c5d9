"""A secret Terraform variable reaches Terraform as TF_VAR_x in its environment only: never
argv (read from /proc while it runs), the store's bytes, the instance dir, or the temp dir."""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import pytest
from support import files_holding, wait_until
from tf_support import add_module, add_template, engine_service, log_text, running_pool, submit

from opsconsole.config import Settings
from opsconsole.core import instances
from opsconsole.core.states import JobState

S = JobState
pytestmark = pytest.mark.slow


def argv_holding(needle: bytes) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
    return found


def test_a_secret_variable_is_nowhere_but_terraforms_environment(
    settings: Settings, catalog: Path
) -> None:
    token = "tok-" + secrets.token_hex(12)
    needle = token.encode()
    since = time.time() - 1
    add_module(catalog)
    add_template(catalog, gated=False)
    with engine_service(settings, "binary") as svc, running_pool(svc):
        job = submit(svc, "infra", name="vault", token=token, pause=2)
        seen_running = False

        def sampled() -> bool:
            # argv is sampled all along the run; the apply pauses 2 s so there is a run to see
            nonlocal seen_running
            assert argv_holding(needle) == []
            seen_running = seen_running or "Creating" in log_text(svc, job)
            return svc.get(job).state not in (S.QUEUED, S.RUNNING)

        wait_until(sampled, 90, 0.05)
        assert seen_running
        assert svc.get(job).state == S.SUCCEEDED
        ws = instances.workspace(settings.home, "infra", "vault")
        assert "token-set" in (ws / "first.txt").read_text()  # it did reach Terraform
        assert token not in log_text(svc, job)
    db_file = Path(str(settings.db).removeprefix("sqlite:///"))
    for path in (db_file, db_file.with_name(db_file.name + "-wal")):
        assert not path.exists() or needle not in path.read_bytes()
    assert files_holding(ws, needle, 0) == []  # ephemeral: not even the state or the plan
    assert files_holding(Path(tempfile.gettempdir()), needle, since) == []
