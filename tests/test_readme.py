"""The README stays true: its two commands, the CI script, the tables generated from code."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsconsole.cli.exit_codes import ExitCode
from opsconsole.config import settings_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    assert README.index("```sh") < README.index("\n## ")
    commands = [ln for ln in first_block.group(1).splitlines() if ln.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("opsconsole")
    assert "test.sh" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    test_command = re.search(r"```sh\n.*?\n(.*?)\n```", README, re.S).group(1).strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_command == "bash scripts/test.sh"
    assert "exec bash scripts/test.sh" in ci
    script = (REPO / "scripts" / "test.sh").read_text()
    assert "apt-get update" in script and "pytest" in script


def test_configuration_table_is_generated_from_settings() -> None:
    assert settings_table() in README


def test_every_exit_code_is_documented() -> None:
    section = README.split("### Exit codes", 1)[1].split("###", 1)[0]
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \|", section, re.M), code


def test_every_sample_template_is_walked_through() -> None:
    for path in sorted((REPO / "data" / "templates").glob("*.yaml")):
        assert f"`{path.stem}`" in README, path.stem


# -- the tour, run as written -------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What one tour line must do: its exit code (from its comment), what it prints."""

    shows: tuple[str, ...] = ()
    job: str | None = None
    """Which earlier job ``JOB`` names (by the name the tour's submit was recorded under)."""
    names: str | None = None
    """Record the job this line submits under this name."""
    state: tuple[str, str] | None = None
    """(recorded job, state it must be in once this line has run)."""


TOUR: dict[str, Step] = {
    "source .venv/bin/activate": Step(),
    "opsconsole templates list": Step(shows=("hello", "deploy-app", "sync-inventory")),
    "opsconsole templates show deploy-app": Step(shows=("token", "deploy-{{ env }}")),
    "opsconsole worker &": Step(),
    "opsconsole submit hello -p name=ops --wait": Step(shows=("succeeded",), names="hello"),
    "opsconsole submit disk-report -p path=/tmp --wait": Step(shows=("succeeded",)),
    "opsconsole submit sync-inventory -p hosts=web1,web2,db1 -p fail=db1 --wait": Step(
        shows=("partial", "db1: unreachable"), names="sync"
    ),
    "opsconsole submit rotate-logs -p files=/etc/hostname,/nope --wait": Step(
        shows=("partial", "missing: /nope"), names="rotate"
    ),
    "opsconsole submit deploy-app -p app=shop -p version=1.4.2 --dry-run": Step(
        shows=("not echoed", "queued"), names="deploy"
    ),
    "opsconsole submit hello --in 10m": Step(shows=("scheduled",), names="later"),
    "opsconsole submit hello --after JOB": Step(
        job="later", shows=("waiting",), names="after", state=("after", "waiting")
    ),
    "opsconsole jobs list": Step(shows=("ID", "sync-inventory", "rotate-logs")),
    "opsconsole jobs show JOB": Step(job="deploy", shows=("param token", "***")),
    "opsconsole logs JOB --follow": Step(job="rotate", shows=("rotated /etc/hostname",)),
    'opsconsole jobs cancel JOB --reason "wrong version"': Step(
        job="later", shows=("cancelled",), state=("after", "cancelled")
    ),
    "opsconsole jobs retry JOB": Step(job="later", shows=("queued",)),
    "opsconsole events --follow": Step(shows=("submitted",)),
    "opsconsole locks": Step(),
    "opsconsole stats --since 24h": Step(shows=("partial 2", "PARTIAL")),
    "opsconsole health": Step(shows=("ok",)),
}


def tour_lines() -> list[tuple[str, str]]:
    """(command, comment) for each line of the tour's code block, in order."""
    section = README.split("## A five-minute tour", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    out = []
    for line in block.group(1).splitlines():
        if line.strip():
            command, _, comment = line.partition("  #")
            out.append((command.strip(), comment.strip()))
    return out


def expected_code(comment: str) -> int:
    """The exit code a line's comment promises (``exit 1``, ``exit 0: ...``); else 0."""
    found = re.search(r"\bexit (?:code )?(\d+)", comment)
    return int(found.group(1)) if found else 0


def test_every_tour_line_is_checked_by_the_tour_test() -> None:
    assert [c for c, _ in tour_lines()] == list(TOUR)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of the tour, on the sample catalog from the repository root, against a
    fresh home with a worker in the background: its exit code and what it shows."""
    import os
    import shlex
    import signal
    import subprocess
    import sys

    from cli_support import on_a_terminal
    from support import wait_until

    exe = str(Path(sys.executable).parent / "opsconsole")
    monkeypatch.setenv("OPSCONSOLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSCONSOLE_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("OPSCONSOLE_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("OPSCONSOLE_KILL_GRACE", "1")
    monkeypatch.setenv("OPSCONSOLE_DRAIN_GRACE", "2")
    monkeypatch.chdir(REPO)
    jobs: dict[str, str] = {}
    background: list[subprocess.Popen[bytes]] = []

    def run(argv: list[str]) -> tuple[int, str]:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    def newest_job() -> str:
        code, out = run([exe, "jobs", "list", "--json", "--limit", "1"])
        assert code == 0, out
        return json.loads(out.split("\n", 1)[0])["jobs"][0]["id"]

    def state_of(job: str) -> str:
        code, out = run([exe, "jobs", "show", job, "--json"])
        assert code == 0, out
        return json.loads(out)["state"]

    try:
        for command, comment in tour_lines():
            step = TOUR[command]
            if command.startswith("source "):
                continue  # the test already runs this virtualenv's opsconsole
            argv = shlex.split(command.removesuffix("&"))
            argv[0] = exe
            if step.job is not None:
                argv = [jobs[step.job] if a == "JOB" else a for a in argv]
            if command.endswith("&"):
                worker_log = tmp_path / "worker.log"
                with worker_log.open("wb") as out:
                    worker = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
                background.append(worker)

                def registered(w: subprocess.Popen[bytes] = worker, log: Path = worker_log) -> int:
                    # a worker that died says why here, not as a bare timeout
                    assert w.poll() is None, f"the worker exited {w.returncode}: {log.read_text()}"
                    return run([exe, "workers", "list", "--json"])[1].count('"id"')

                wait_until(registered, 90)
                continue
            if "asks for the token" in comment:  # on a terminal, typing the token
                seen, code, asked = on_a_terminal(
                    argv, b"not echoed", lambda fd: os.write(fd, b"tok-3x4mple\n"), timeout=60
                )
                shown = seen.decode(errors="replace")
                assert asked and "tok-3x4mple" not in shown, shown
            elif argv[-1] == "--follow" and argv[1] == "events":  # until Ctrl-C
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                first = proc.stdout.readline().decode() if proc.stdout else ""
                proc.send_signal(signal.SIGINT)
                rest, _ = proc.communicate(timeout=60)
                code, shown = proc.returncode, first + rest.decode()
            else:
                code, shown = run(argv)
            assert code == expected_code(comment), (command, code, shown)
            for text in step.shows:
                assert text in shown, (command, text, shown)
            if step.names is not None:
                jobs[step.names] = newest_job()
            if step.state is not None:
                name, state = step.state
                wait_until(lambda n=name, s=state: state_of(jobs[n]) == s, timeout=30)
    finally:
        for proc in background:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
