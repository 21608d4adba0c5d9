"""The Ansible runner on real ansible-runner (local connection): streaming, grid, recap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible_support import (
    REPO,
    ansible_template,
    cells,
    final,
    local_hosts,
    out_lines,
    playbook,
    with_samples,
)
from support import wait_until

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


def sample(catalog: Path, name: str) -> None:
    with_samples(catalog)
    src = REPO / "data" / "templates" / f"{name}.yaml"
    (catalog / "templates" / f"{name}.yaml").write_text(src.read_text())


def test_one_host_failing_ends_partial_with_its_recap(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    pb = playbook(
        catalog,
        "half",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Break web2\n      ansible.builtin.fail: {msg: web2 is broken}\n"
        "      when: inventory_hostname == 'web2'\n"
        "    - name: After\n      ansible.builtin.debug: {msg: still here}\n",
    )
    ansible_template(catalog, "half", f"  playbook: {pb}\n{local_hosts('web1', 'web2')}")
    start_pool()
    job = service.submit(SubmitRequest("half")).id
    view = final(service, job)
    assert view.state == S.PARTIAL, "\n".join(out_lines(service, job)[-15:])
    recap = view.result["recap"]
    assert recap["web2"]["failed"] == 1 and recap["web1"]["failed"] == 0
    assert recap["web1"]["ok"] == 1 and recap["web1"]["skipped"] == 1
    assert view.result["failed_hosts"] == ["web2"]
    grid = {(c["seq"], c["host"]): c for c in cells(service, job)}
    assert grid[(0, "web2")]["status"] == "failed"
    assert grid[(0, "web2")]["msg"] == "web2 is broken"
    assert grid[(0, "web1")]["status"] == "skipped"
    assert grid[(1, "web1")]["status"] == "ok" and (1, "web2") not in grid


def test_every_host_failing_or_unreachable_fails_naming_them(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    pb = playbook(
        catalog,
        "down",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Reach\n      ansible.builtin.ping:\n"
        "    - name: Fail\n      ansible.builtin.fail: {msg: nope}\n",
    )
    inventory = (
        "  inventory:\n    hosts:\n      web1: {ansible_connection: local}\n"
        "      gone: {ansible_host: 127.0.0.1, ansible_port: 1, ansible_connection: ssh}\n"
    )
    ansible_template(catalog, "down", f"  playbook: {pb}\n{inventory}")
    start_pool()
    job = service.submit(SubmitRequest("down")).id
    view = final(service, job)
    assert view.state == S.FAILED
    assert "gone (unreachable)" in view.error["message"]
    assert "web1 (failed)" in view.error["message"]
    assert view.result["recap"]["gone"]["unreachable"] == 1


def test_dry_run_runs_check_mode_with_a_diff_and_changes_nothing(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    sample(catalog, "rotate-logs-ansible")
    target = tmp_path / "app.log"
    target.write_text("line one\n")
    start_pool()
    job = service.submit(
        SubmitRequest("rotate-logs-ansible", {"files": str(target)}, dry_run=True)
    ).id
    view = final(service, job)
    assert view.state == S.SUCCEEDED, "\n".join(out_lines(service, job)[-15:])
    lines = out_lines(service, job)
    assert any(ln.startswith("--- before") for ln in lines), lines
    assert any(ln.startswith("+++ after") for ln in lines)
    assert view.result["check_mode"] is True
    assert target.read_text() == "line one\n"
    assert not target.with_name("app.log.1").exists()
    job = service.submit(SubmitRequest("rotate-logs-ansible", {"files": str(target)})).id
    assert final(service, job).state == S.SUCCEEDED
    assert target.read_text() == "" and target.with_name("app.log.1").read_text() == "line one\n"


def test_ad_hoc_uptime_streams_and_fills_the_grid(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    sample(catalog, "uptime")
    start_pool()
    job = service.submit(SubmitRequest("uptime")).id
    view = final(service, job)
    assert view.state == S.SUCCEEDED, "\n".join(out_lines(service, job)[-15:])
    lines = out_lines(service, job)
    assert sum(1 for ln in lines if "load average" in ln) == 3
    assert set(view.result["recap"]) == {"web1", "web2", "db1"}
    assert {c["status"] for c in cells(service, job)} == {"changed"}


def test_a_parameter_reaches_ansible_as_data_never_templated(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    sample(catalog, "site-ping")
    proof = tmp_path / "pwned"
    attack = f"{{{{ lookup('pipe', 'touch {proof}') }}}}"
    start_pool()
    job = service.submit(SubmitRequest("site-ping", {"message": attack})).id
    view = final(service, job)
    assert view.state == S.SUCCEEDED, "\n".join(out_lines(service, job)[-15:])
    assert any(attack in ln for ln in out_lines(service, job))
    assert not proof.exists()


def test_log_progress_and_grid_arrive_while_the_play_runs(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    pb = playbook(
        catalog,
        "slow",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: First\n      ansible.builtin.debug: {msg: first line}\n"
        f"    - name: Wait\n      ansible.builtin.wait_for: {{path: {release}, timeout: 300}}\n"
        "    - name: Last\n      ansible.builtin.debug: {msg: done}\n",
    )
    ansible_template(catalog, "slow", f"  playbook: {pb}\n{local_hosts('a', 'b')}")
    start_pool()
    job = service.submit(SubmitRequest("slow")).id
    wait_until(lambda: any("first line" in ln for ln in out_lines(service, job)), 60)
    wait_until(
        lambda: {(c["seq"], c["status"]) for c in cells(service, job)} >= {(1, "running")}, 60
    )
    running = wait_until(lambda: (v := service.get(job)).step == "Wait" and v, 30)
    assert running.state == S.RUNNING and running.progress == 50
    assert {c["host"] for c in cells(service, job) if c["seq"] == 0} == {"a", "b"}
    release.touch()
    view = final(service, job)
    assert view.state == S.SUCCEEDED
    assert view.progress == 100
