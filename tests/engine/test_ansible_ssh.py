"""Ansible over SSH against a real local sshd, with a credential from opsconsole.toml."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_support import ansible_template, cells, cmdlines, final, out_lines, playbook
from sshd import Sshd, sshd

from opsconsole.config import Settings, load_settings
from opsconsole.core.errors import InvalidParams
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import JobState
from opsconsole.core.store.db import Database

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Sshd]:
    with sshd(tmp_path / "sshd") as srv:
        yield srv


@pytest.fixture
def ssh_service(
    server: Sshd, home: Path, catalog: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpsService]:
    config = home / "opsconsole.toml"
    config.write_text(
        f'[credentials.lab]\nuser = "{server.user}"\nprivate_key = "file:{server.user_key}"\n'
    )
    from conftest import FAST

    settings = load_settings(home=home, catalog=catalog, db=store_url, **FAST)
    assert settings.credential("lab").user == server.user
    db = Database(settings.db)
    yield OpsService(settings, db)
    db.dispose()


def ssh_inventory(server: Sshd) -> str:
    return (
        "params:\n  targets: {type: hosts, default: '127.0.0.1'}\n"
        "ansible:\n"
        "  credential: lab\n"
        "  inventory: {param: targets}\n"
        "  extravars:\n"
        f"    ansible_port: '{server.port}'\n"
        "    ansible_python_interpreter: /usr/bin/python3\n"
        f"    ansible_ssh_common_args: '-o UserKnownHostsFile={server.known_hosts}'\n"
    )


def test_a_playbook_and_an_ad_hoc_command_run_over_ssh(
    ssh_service: OpsService, server: Sshd, catalog: Path, tmp_path: Path
) -> None:
    from opsconsole.engine.pool import WorkerPool

    service = ssh_service
    key_text = server.user_key.read_bytes().split(b"\n")[1]  # a line of the private key
    pb = playbook(
        catalog,
        "remote",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Where am I\n      ansible.builtin.shell: echo over-ssh-$SSH_CONNECTION\n"
        "      register: where\n"
        "    - name: Say\n      ansible.builtin.debug: {var: where.stdout}\n",
    )
    body = ssh_inventory(server).replace("ansible:\n", f"ansible:\n  playbook: {pb}\n")
    (catalog / "templates" / "remote.yaml").write_text(f"name: remote\nrunner: ansible\n{body}")
    adhoc = ssh_inventory(server).replace(
        "ansible:\n", "ansible:\n  module: ansible.builtin.command\n  module_args: hostname\n"
    )
    (catalog / "templates" / "adhoc.yaml").write_text(f"name: adhoc\nrunner: ansible\n{adhoc}")
    seen_key: list[bytes] = []
    stop = threading.Event()

    def watch_argv() -> None:
        while not stop.is_set():
            seen_key.extend(c for c in cmdlines() if key_text in c)
            stop.wait(0.05)

    watcher = threading.Thread(target=watch_argv)
    watcher.start()
    pool = WorkerPool(service, slots=1).start()
    try:
        job = service.submit(SubmitRequest("remote")).id
        view = final(service, job)
        assert view.state == JobState.SUCCEEDED, "\n".join(out_lines(service, job)[-20:])
        assert any("over-ssh-127.0.0.1" in ln for ln in out_lines(service, job)), out_lines(
            service, job
        )
        assert view.result["recap"]["127.0.0.1"]["changed"] == 1
        job2 = service.submit(SubmitRequest("adhoc")).id
        view2 = final(service, job2)
        assert view2.state == JobState.SUCCEEDED, "\n".join(out_lines(service, job2)[-20:])
        assert any(os.uname().nodename in ln for ln in out_lines(service, job2))
        assert [c["status"] for c in cells(service, job2)] == ["changed"]
    finally:
        pool.stop(grace=0.5)
        stop.set()
        watcher.join()
    assert seen_key == []
    service.db.dispose()
    db_bytes = b"".join(p.read_bytes() for p in Path(service.settings.home).glob("*.db*"))
    assert key_text not in db_bytes


def test_an_unknown_credential_or_an_inline_secret_is_refused(
    home: Path, catalog: Path, settings: Settings
) -> None:
    with pytest.raises(InvalidParams, match="credential 'nope' is not declared"):
        settings.credential("nope")
    config = home / "opsconsole.toml"
    config.write_text('[credentials.bad]\nprivate_key = "-----BEGIN KEY-----"\n')
    with pytest.raises(InvalidParams, match="must be a reference"):
        load_settings(home=home, catalog=catalog)


def test_a_credential_file_that_is_gone_fails_the_job_in_one_line(
    ssh_service: OpsService, server: Sshd, catalog: Path, start_pool: Any
) -> None:
    del start_pool
    from opsconsole.engine.pool import WorkerPool

    pb = playbook(catalog, "noop", "- hosts: all\n  gather_facts: false\n  tasks: []\n")
    body = ssh_inventory(server).replace("ansible:\n", f"ansible:\n  playbook: {pb}\n")
    (catalog / "templates" / "remote.yaml").write_text(f"name: remote\nrunner: ansible\n{body}")
    server.user_key.rename(server.user_key.with_suffix(".moved"))
    pool = WorkerPool(ssh_service, slots=1).start()
    try:
        view = final(ssh_service, ssh_service.submit(SubmitRequest("remote")).id)
    finally:
        pool.stop(grace=0.5)
    assert view.state == JobState.FAILED
    assert "credential 'lab': private_key: cannot read" in view.error["message"]
    assert ansible_template  # the helper module is shared with the other Ansible tests
