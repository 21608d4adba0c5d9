"""Stopping an Ansible run, secrets kept out of argv/artifacts/store/temp, and bad input."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from ansible_support import (
    REPO,
    ansible_template,
    cells,
    cmdlines,
    final,
    local_hosts,
    marked_pids,
    out_lines,
    playbook,
)
from support import files_holding, wait_until

from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState

S = JobState

SLEEPER = (
    "- hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Before\n      ansible.builtin.debug: {msg: about to sleep}\n"
    "    - name: Sleep\n      ansible.builtin.command: sleep 300\n"
)


def sleeping(service: OpsService, catalog: Path, top: str = "") -> str:
    pb = playbook(catalog, "sleeper", SLEEPER)
    ansible_template(catalog, "sleeper", f"  playbook: {pb}\n{local_hosts('a', 'b')}", top)
    job = service.submit(SubmitRequest("sleeper")).id
    wait_until(lambda: any(c["status"] == "running" for c in cells(service, job)), 90, 0.1)
    return str(job)


def sleeps_of(marker: str) -> list[int]:
    return [p for p in marked_pids(marker) if b"sleep\x00300" in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_all_gone(marker: str) -> None:
    left = marked_pids(marker)
    assert not left, [_cmdline(p) for p in left]


@pytest.mark.slow
def test_cancel_stops_ansible_its_workers_and_the_sleep(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    start_pool()
    job = sleeping(service, catalog)
    marker = f"{job}.1"
    wait_until(lambda: len(sleeps_of(marker)) == 2, 60, 0.1)
    procs = b"\n".join(_cmdline(p) for p in marked_pids(marker))
    assert b"ansible-playbook" in procs  # the test sees what it then proves is gone
    service.cancel(job)
    view = final(service, job, 60)
    assert view.state == S.CANCELLED
    assert_all_gone(marker)
    lines = out_lines(service, job)
    assert any("TASK [Sleep]" in ln for ln in lines)
    assert any("about to sleep" in ln for ln in lines)


@pytest.mark.slow
def test_timeout_stops_everything_and_keeps_the_last_lines(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    start_pool()
    job = sleeping(service, catalog, "timeout: 8s\n")
    marker = f"{job}.1"
    view = final(service, job, 90)
    assert view.state == S.TIMED_OUT
    assert_all_gone(marker)
    assert any("TASK [Sleep]" in ln for ln in out_lines(service, job))


@pytest.mark.slow
def test_a_secret_stays_out_of_argv_artifacts_store_and_temp(
    service: OpsService, catalog: Path, start_pool: Any, home: Path, tmp_path: Path
) -> None:
    token = "s3cr3t-" + os.urandom(6).hex()
    release = tmp_path / "release"
    pb = playbook(
        catalog,
        "secretive",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Use the token\n      no_log: true\n"
        "      ansible.builtin.set_fact: {digest: \"{{ token | hash('sha1') }}\"}\n"
        f"    - name: Wait\n      ansible.builtin.wait_for: {{path: {release}, timeout: 300}}\n",
    )
    ansible_template(
        catalog,
        "secretive",
        f"  playbook: {pb}\n{local_hosts('a')}  extravars:\n    token: '{{{{ token }}}}'\n",
        "params:\n  token: {type: string, secret: true, required: true}\n",
    )
    start_pool()
    since = time.time() - 1
    job = service.submit(SubmitRequest("secretive", {"token": token})).id
    wait_until(lambda: any(c["seq"] == 1 for c in cells(service, job)), 90, 0.1)
    needle = token.encode()
    assert not [c for c in cmdlines() if needle in c]
    run_dirs = list((home / "run").glob("ansible-*"))
    assert run_dirs and all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in run_dirs)
    assert list(run_dirs[0].glob("artifacts/*/command"))  # the dir the check reads is there
    assert files_holding(home / "run", needle) == []
    system_tmp = Path(tempfile.gettempdir())
    assert files_holding(system_tmp, needle, since) == []
    release.touch()
    assert final(service, job).state == S.SUCCEEDED
    assert not list((home / "run").glob("ansible-*"))  # removed after the attempt
    service.db.dispose()
    assert files_holding(home, needle) == []  # the store's bytes, WAL included


# -- bad input: one clear line, nothing started ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside.yml", "relative path inside the catalog"),
        ("/etc/hostname", "relative path inside the catalog"),
        ("ansible/link.yml", "outside the catalog"),
        ("ansible/missing.yml", "not found in the catalog"),
    ],
)
def test_a_playbook_outside_the_catalog_is_refused(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path, path: str, words: str
) -> None:
    (tmp_path / "outside.yml").write_text("- hosts: all\n  tasks: []\n")
    (catalog / "ansible").mkdir()
    (catalog / "ansible" / "link.yml").symlink_to(tmp_path / "outside.yml")
    ansible_template(catalog, "bad", f"  playbook: '{path}'\n{local_hosts('a')}")
    start_pool()
    job = service.submit(SubmitRequest("bad")).id
    view = final(service, job, 30)
    assert view.state == S.FAILED
    assert words in view.error["message"] and view.error["message"].startswith("not started")
    assert view.error["kind"] == "setup"
    assert not cells(service, job)


def test_a_missing_inventory_file_or_empty_hosts_parameter_is_refused(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    pb = playbook(catalog, "noop", "- hosts: all\n  gather_facts: false\n  tasks: []\n")
    ansible_template(catalog, "nofile", f"  playbook: {pb}\n  inventory: inventory/nope.yml\n")
    ansible_template(
        catalog,
        "noparam",
        f"  playbook: {pb}\n  inventory: {{param: targets}}\n",
        "params:\n  targets: {type: hosts}\n",
    )
    start_pool()
    a = service.submit(SubmitRequest("nofile")).id
    b = service.submit(SubmitRequest("noparam")).id
    assert "inventory 'inventory/nope.yml' not found" in final(service, a, 30).error["message"]
    assert "parameter 'targets' names no hosts" in final(service, b, 30).error["message"]


def test_a_hosts_parameter_takes_host_names_only(service: OpsService, catalog: Path) -> None:
    from opsconsole.core.errors import InvalidParams

    pb = playbook(catalog, "noop", "- hosts: all\n  gather_facts: false\n  tasks: []\n")
    ansible_template(
        catalog,
        "targets",
        f"  playbook: {pb}\n  inventory: {{param: targets}}\n",
        "params:\n  targets: {type: hosts, required: true}\n",
    )
    for bad in ("web*", "@/etc/passwd", "a;b", "all:!db"):
        with pytest.raises(InvalidParams, match="not a host name"):
            service.submit(SubmitRequest("targets", {"targets": bad}))


def test_the_child_says_how_to_install_ansible_when_it_is_missing(tmp_path: Path) -> None:
    system = "/usr/bin/python3"
    probe = subprocess.run([system, "-c", "import ansible_runner"], capture_output=True)
    if not Path(system).exists() or probe.returncode == 0:
        pytest.skip("needs a Python without ansible-runner")
    proc = subprocess.run(
        [system, "-m", "opsconsole.engine.runners.ansible_child"],
        input=b'{"run": {}}',
        capture_output=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"pip install 'opsconsole[ansible]'" in proc.stdout
    assert b"Traceback" not in proc.stderr
    assert sys.executable != system
