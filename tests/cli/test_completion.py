"""Tab completion, asked for as bash and zsh ask: the installed command in a subprocess,
with Typer's completion variables, on a real catalog and a real store holding real jobs."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import write_template

from opsconsole.config import Settings
from opsconsole.core.clock import SettableClock
from opsconsole.core.service import OpsService, SubmitRequest
from opsconsole.core.store import claim as claim_store

OPSCONSOLE = Path(sys.executable).parent / "opsconsole"


def shell_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE_")}
    env.update(
        HOME=str(tmp_path / "user"),
        OPSCONSOLE_HOME=str(settings.home),
        OPSCONSOLE_DB=settings.db,
        OPSCONSOLE_CATALOG=str(settings.catalog),
    )
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPSCONSOLE), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def bash(env: dict[str, str], line: str) -> list[str]:
    """What bash's completion function hands opsconsole for ``line`` (the cursor at its
    end): the words, and the index of the one being completed."""
    words = line.split(" ")
    result = run(
        {
            **env,
            "_OPSCONSOLE_COMPLETE": "complete_bash",
            "COMP_WORDS": "\n".join(words),  # bash joins "${COMP_WORDS[*]}" with IFS=\n
            "COMP_CWORD": str(len(words) - 1),
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [word for word in result.stdout.splitlines() if word]  # as $( ) splits it for bash


def zsh(env: dict[str, str], line: str) -> list[tuple[str, str]]:
    """What zsh's completion function gets for ``line``: (value, hint) pairs."""
    result = run({**env, "_OPSCONSOLE_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if result.stdout.strip() == "_files":
        return []
    assert result.stdout.startswith("_arguments '*: :((")
    return re.findall(r'"((?:[^"]|"")*)"(?::"((?:[^"]|"")*)")?', result.stdout)


@pytest.fixture
def deploy(catalog: Path) -> None:
    write_template(
        catalog,
        "deploy",
        "description: Deploy an app\nrunner: shell\ncommand: [echo, '{{ app }}']\n"
        "params:\n"
        "  app: {type: string, required: true, description: What to deploy}\n"
        "  env: {type: choice, choices: [staging, production], default: staging}\n"
        "  token: {type: string, secret: true, required: true}\n",
    )
    write_template(catalog, "hello", "runner: shell\ncommand: [echo, hi]\n")
    write_template(catalog, "health-check", "runner: shell\ncommand: [echo, ok]\n")


@pytest.fixture
def env(settings: Settings, tmp_path: Path, deploy: None) -> dict[str, str]:
    return shell_env(settings, tmp_path)


@pytest.fixture
def jobs(clocked: OpsService, clock: SettableClock, deploy: None) -> dict[str, str]:
    """One job in each kind of state, each a minute after the last."""

    def submit(**kw: object) -> str:
        clock.advance(60)
        return clocked.submit(SubmitRequest(template="hello", **kw)).id  # type: ignore[arg-type]

    made = {"running": submit(priority="critical")}
    assert claim_store.claim(clocked.db, "w1", clock.now(), 60)["id"] == made["running"]
    made["old_cancelled"] = submit()
    clock.advance(60)
    clocked.cancel(made["old_cancelled"])
    made["queued"] = submit()
    made["waiting"] = submit(after=(made["queued"],))
    made["scheduled"] = submit(run_in="1h")
    made["cancelled"] = submit()
    clock.advance(60)
    clocked.cancel(made["cancelled"])
    return made


def test_show_completion_prints_the_script_each_shell_loads(env):
    script = run(env, "--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_OPSCONSOLE_COMPLETE=complete_bash" in script.stdout
    assert "complete -o nosort -o default -F _opsconsole_completion opsconsole" in script.stdout
    zsh_script = run(env, "--show-completion", "zsh").stdout
    assert "#compdef opsconsole" in zsh_script
    assert "_OPSCONSOLE_COMPLETE=complete_zsh" in zsh_script
    assert "complete --command opsconsole" in run(env, "--show-completion", "fish").stdout
    asked_as_click_asks = run({**env, "_OPSCONSOLE_COMPLETE": "source_bash"})
    assert asked_as_click_asks.stdout == script.stdout


def test_an_unknown_shell_is_refused_in_one_line(env):
    result = run(env, "--show-completion", "tcsh")
    assert result.returncode == 2
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr
    assert result.stdout == ""


def test_install_completion_writes_the_script_where_bash_loads_it(env, tmp_path):
    rc = tmp_path / "user" / ".bashrc"
    rc.parent.mkdir()
    rc.write_text("export EDITOR=vi")
    for _ in range(2):
        result = run(env, "--install-completion", "bash")
        assert result.returncode == 0, result.stderr
    script = tmp_path / "user" / ".bash_completions" / "opsconsole.sh"
    assert str(script) in result.stdout
    assert script.read_text() == run(env, "--show-completion", "bash").stdout
    assert rc.read_text() == f"export EDITOR=vi\nsource '{script}'\n"


def test_install_completion_for_zsh_and_fish(env, tmp_path):
    for shell, where in [("zsh", ".zfunc/_opsconsole"), ("fish", ".config/fish/completions")]:
        result = run(env, "--install-completion", shell)
        assert result.returncode == 0, result.stderr
        assert str(tmp_path / "user" / where) in result.stdout
    assert "compinit" in (tmp_path / "user" / ".zshrc").read_text()


def bash_tab(env: dict[str, str], words: str) -> list[str]:
    """Source the shown script in bash and call its function as bash does on Tab."""
    script = run(env, "--show-completion", "bash").stdout
    result = subprocess.run(
        [
            "bash",
            "--norc",
            "-c",
            f"{script}\nCOMP_WORDS=({words})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
            '_opsconsole_completion opsconsole\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
            "complete -p opsconsole",
        ],
        env={**env, "PATH": f"{OPSCONSOLE.parent}{os.pathsep}{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *replies, registered = result.stdout.splitlines()
    assert registered == "complete -o default -o nosort -F _opsconsole_completion opsconsole"
    return replies


def test_bash_itself_completes_through_the_shown_script(env, jobs):
    assert bash_tab(env, 'opsconsole jobs cancel ""') == [
        jobs["running"],
        jobs["queued"],
        jobs["waiting"],
        jobs["scheduled"],
    ]
    assert bash_tab(env, "opsconsole submit deploy -p ap") == ["app="]


def test_commands_and_options_complete(env):
    assert {"submit", "jobs", "templates", "logs"} <= set(bash(env, "opsconsole "))
    assert set(bash(env, "opsconsole jobs ")) >= {"list", "show", "cancel", "retry", "wait"}
    assert {"--state", "--template"} <= set(bash(env, "opsconsole jobs list --"))


def test_template_names_complete_in_bash_and_zsh(env):
    assert bash(env, "opsconsole submit ") == ["deploy", "health-check", "hello"]
    assert bash(env, "opsconsole templates show he") == ["health-check", "hello"]
    assert bash(env, "opsconsole jobs list --template d") == ["deploy"]
    assert zsh(env, "opsconsole submit d") == [("deploy", "Deploy an app")]


def test_parameters_of_the_template_on_the_line_complete(env):
    """Each parameter once, as NAME=; a secret as NAME=@ (from a file, out of history)."""
    assert bash(env, "opsconsole submit deploy -p ") == ["app=", "env=", "token=@"]
    assert bash(env, "opsconsole submit deploy --wait -p app=x -p ") == ["env=", "token=@"]
    assert bash(env, "opsconsole submit -p app=x deploy -p t") == ["token=@"]
    hints = dict(zsh(env, "opsconsole submit deploy -p "))
    assert hints["app="] == "required string; What to deploy"
    assert hints["token=@"] == "required secret, read from @FILE (@- stdin)"
    assert [v for v, _ in zsh(env, "opsconsole submit deploy -p env=")] == [
        "env=staging",
        "env=production",
    ]
    assert bash(env, "opsconsole submit hello -p ") == []


def test_job_ids_complete_live_ones_first(env, jobs):
    expected = [
        jobs["running"],
        jobs["queued"],
        jobs["waiting"],
        jobs["scheduled"],
        jobs["cancelled"],
        jobs["old_cancelled"],
    ]
    assert bash(env, "opsconsole jobs show ") == expected
    assert bash(env, "opsconsole logs ") == expected
    assert [v for v, _ in zsh(env, "opsconsole jobs wait ")] == expected
    assert zsh(env, f"opsconsole jobs show {jobs['running']}") == [
        (jobs["running"], "running hello")
    ]


def test_cancel_offers_live_jobs_and_retry_finished_ones(env, jobs):
    assert bash(env, "opsconsole jobs cancel ") == [
        jobs["running"],
        jobs["queued"],
        jobs["waiting"],
        jobs["scheduled"],
    ]
    assert bash(env, "opsconsole jobs retry ") == [jobs["cancelled"], jobs["old_cancelled"]]


def test_a_job_id_prefix_narrows_the_candidates(env, jobs):
    prefix = jobs["queued"][:3]
    found = bash(env, f"opsconsole jobs show {prefix}")
    assert jobs["queued"] in found
    assert all(j.startswith(prefix) for j in found)


def test_states_complete_live_first(env):
    states = bash(env, "opsconsole jobs list --state ")
    assert states[:3] == ["running", "awaiting_approval", "queued"]
    assert {"succeeded", "failed", "partial", "cancelled"} <= set(states)
    assert bash(env, "opsconsole jobs list --state fa") == ["failed"]


def test_global_options_on_the_line_choose_the_store_and_catalog(env, tmp_path, settings):
    other = tmp_path / "other"
    write_template(other, "elsewhere", "runner: shell\ncommand: [echo]\n")
    assert bash(env, f"opsconsole --catalog {other} submit ") == ["elsewhere"]
    assert bash(env, f"opsconsole --db {tmp_path / 'none.db'} jobs show ") == []


def test_completion_never_creates_or_migrates_a_store(settings, tmp_path, deploy):
    missing = tmp_path / "home" / "new.db"
    env = shell_env(settings, tmp_path, OPSCONSOLE_DB=f"sqlite:///{missing}")
    assert bash(env, "opsconsole jobs show ") == []
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert bash({**env, "OPSCONSOLE_DB": str(empty)}, "opsconsole jobs show ") == []
    with sqlite3.connect(empty) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize(
    "trouble",
    ["corrupt store", "missing catalog", "unknown template", "bad config"],
)
def test_trouble_offers_nothing_and_prints_no_traceback(settings, tmp_path, deploy, trouble):
    env = shell_env(settings, tmp_path)
    line = "opsconsole submit deploy -p "
    if trouble == "corrupt store":
        Path(settings.home, "bad.db").write_bytes(b"not a database" * 100)
        env["OPSCONSOLE_DB"] = str(Path(settings.home, "bad.db"))
        line = "opsconsole jobs show "
    elif trouble == "missing catalog":
        shutil.rmtree(settings.catalog)
    elif trouble == "unknown template":
        line = "opsconsole submit nosuch -p "
    else:
        env["OPSCONSOLE_WORKERS"] = "many"
        line = "opsconsole submit "
    assert bash(env, line) == []  # bash() also asserts an empty stderr and exit 0
    assert zsh(env, line) == []
