"""A shell job runs only a program from PATH or one inside the catalog, checked again at exec.

Real files, real symlinks and a real worker pool: the catalog is loaded, the job submitted,
and the worker resolves the program right before it starts it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import wait_until, write_template

from opsconsole.core.errors import NotFound
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.states import FINAL, JobState
from opsconsole.core.views import JobView

S = JobState


def final(service: OpsService, job_id: str, timeout: float = 15.0) -> JobView:
    return wait_until(lambda: (v := service.get(job_id)).state in FINAL and v, timeout)


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """``outside/evil.sh`` and ``outside/deploy.sh`` (next to, not in, the catalog) and the
    file either one creates if it ever runs."""
    ran = tmp_path / "evil-ran"
    script(tmp_path / "outside" / "evil.sh", f"touch {ran}")
    script(tmp_path / "outside" / "deploy.sh", f"touch {ran}")
    return tmp_path / "outside", ran


def test_a_parameter_cannot_choose_the_program(
    service: OpsService, catalog: Path, start_pool: Any, evil: tuple[Path, Path]
) -> None:
    _, ran = evil
    script(catalog / "scripts" / "hello.sh", "echo hello")
    write_template(
        catalog,
        "run-script",
        'command: ["scripts/{{ name }}.sh"]\nparams:\n  name: {type: string, required: true}\n',
    )
    write_template(catalog, "hello", 'command: ["scripts/hello.sh"]\n')
    problems = service.catalog_problems()
    assert len(problems) == 1
    assert ":2: command[0]: the program may not contain a placeholder" in problems[0]
    with pytest.raises(NotFound, match=r"template 'run-script' is not loaded: .*placeholder"):
        service.submit(SubmitRequest("run-script", {"name": "../../outside/evil"}))

    start_pool(1)
    good = service.submit(SubmitRequest("hello"))
    assert final(service, good.id).state == S.SUCCEEDED
    assert not ran.exists()


def test_a_static_path_out_of_the_catalog_is_refused(
    service: OpsService, catalog: Path, start_pool: Any, evil: tuple[Path, Path]
) -> None:
    _, ran = evil
    write_template(catalog, "escape", 'command: ["../outside/evil.sh"]\n')
    write_template(catalog, "hello", "command: [echo, hello]\n")
    (problem,) = service.catalog_problems()
    assert ":2: command[0]: program '../outside/evil.sh' resolves to " in problem
    assert "outside the catalog" in problem
    assert "use the bare name 'evil.sh' to run it from PATH" in problem
    with pytest.raises(NotFound, match="template 'escape' is not loaded"):
        service.submit(SubmitRequest("escape"))

    start_pool(1)
    good = service.submit(SubmitRequest("hello"))
    assert final(service, good.id).state == S.SUCCEEDED
    assert not ran.exists()


def test_a_link_planted_after_submit_fails_the_job_without_exec(
    service: OpsService, catalog: Path, start_pool: Any, evil: tuple[Path, Path]
) -> None:
    outside, ran = evil
    scripts = catalog / "scripts"
    script(scripts / "deploy.sh", "echo deploying")
    write_template(catalog, "deploy", 'command: ["scripts/deploy.sh", "v1"]\n')
    assert service.catalog_problems() == []
    job = service.submit(SubmitRequest("deploy"))

    # between load and run, scripts/ becomes a link to a directory outside the catalog
    (scripts / "deploy.sh").unlink()
    scripts.rmdir()
    scripts.symlink_to(outside, target_is_directory=True)

    start_pool(1)
    view = final(service, job.id)
    assert view.state == S.FAILED
    assert view.error is not None
    expected = (
        f"not started: program 'scripts/deploy.sh' resolves to {outside.resolve() / 'deploy.sh'}, "
        f"outside the catalog {catalog.resolve()}"
    )
    assert view.error["message"].startswith(expected)
    assert not ran.exists()
    assert [ln.text for ln in service.logs_since(job.id) if ln.stream != "meta"] == []


def test_a_symlinked_scripts_dir_is_refused_at_load(
    service: OpsService, catalog: Path, evil: tuple[Path, Path]
) -> None:
    outside, _ = evil
    (catalog / "scripts").symlink_to(outside, target_is_directory=True)
    write_template(catalog, "deploy", 'command: ["scripts/deploy.sh"]\n')
    (problem,) = service.catalog_problems()
    assert f"resolves to {outside.resolve() / 'deploy.sh'}, outside the catalog" in problem


def test_an_absolute_path_outside_the_catalog_is_refused(
    service: OpsService, catalog: Path, evil: tuple[Path, Path]
) -> None:
    outside, _ = evil
    write_template(catalog, "abs", f'command: ["{outside / "deploy.sh"}"]\n')
    (problem,) = service.catalog_problems()
    assert "outside the catalog" in problem
    assert "use the bare name 'deploy.sh' to run it from PATH" in problem


def test_links_inside_the_catalog_run_the_resolved_script(
    service: OpsService, catalog: Path, start_pool: Any
) -> None:
    real = script(catalog / "releases" / "v2" / "deploy.sh", 'echo "$0 $1"')
    (catalog / "scripts").mkdir()
    (catalog / "scripts" / "deploy.sh").symlink_to(Path("..") / "releases" / "v2" / "deploy.sh")
    write_template(
        catalog,
        "deploy",
        'command: ["scripts/deploy.sh", "{{ v }}"]\nparams: {v: {type: string}}\n',
    )
    write_template(catalog, "absolute", f'command: ["{catalog / "scripts" / "deploy.sh"}"]\n')
    assert service.catalog_problems() == []
    jobs = [
        service.submit(SubmitRequest("deploy", {"v": "x"})),
        service.submit(SubmitRequest("absolute")),
    ]
    start_pool(1)
    for job in jobs:
        view = final(service, job.id)
        assert view.state == S.SUCCEEDED, view.error
    lines = [ln.text for ln in service.logs_since(jobs[0].id) if ln.stream == "out"]
    # $0 is the path that was executed: the link resolved once, inside the catalog
    assert lines == [f"{os.path.realpath(real)} x"]


def test_a_bare_name_comes_from_path(service: OpsService, catalog: Path, start_pool: Any) -> None:
    write_template(catalog, "hello", "command: [echo, hello]\n")
    job = service.submit(SubmitRequest("hello"))
    start_pool(1)
    assert final(service, job.id).state == S.SUCCEEDED
    assert [ln.text for ln in service.logs_since(job.id) if ln.stream == "out"] == ["hello"]


@pytest.mark.parametrize("isolate", [False, True], ids=["in-thread", "isolated"])
def test_a_handler_module_linked_out_after_submit_is_not_imported(
    service: OpsService, catalog: Path, start_pool: Any, tmp_path: Path, isolate: bool
) -> None:
    ran = tmp_path / "evil-ran"
    module = f"inv_{uuid.uuid4().hex[:10]}"
    (catalog / f"{module}.py").write_text("def run(ctx):\n    return 'catalog'\n")
    outside = tmp_path / "outside" / f"{module}.py"
    outside.parent.mkdir()
    outside.write_text(f"open({str(ran)!r}, 'w').close()\ndef run(ctx):\n    return 'evil'\n")
    write_template(
        catalog, "inv", f"runner: python\nhandler: {module}:run\nisolate: {str(isolate).lower()}\n"
    )
    assert service.catalog_problems() == []
    job = service.submit(SubmitRequest("inv"))

    (catalog / f"{module}.py").unlink()
    (catalog / f"{module}.py").symlink_to(outside)

    start_pool(1)
    view = final(service, job.id)
    assert view.state == S.FAILED
    assert view.error is not None
    assert view.error["message"].startswith(
        f"handler module file {catalog.resolve() / (module + '.py')} resolves to "
        f"{outside.resolve()}, outside the catalog {catalog.resolve()}"
    )
    assert not ran.exists()
