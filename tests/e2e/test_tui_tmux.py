"""The installed console driven like a person would: in a real terminal (tmux), by keys.

It opens a bare ``opsconsole`` (the console, with its embedded worker pool), submits a job
through the form (template picked in the Select by typing, a field filled, ctrl+s), watches
it run in the Running pane, reads what it printed in the log tail, sees it in History as
succeeded, and quits with ``q``. A second run cancels the running job the cursor is on, and
only that one. Every wait is a bounded poll of ``tmux capture-pane``.

Like a person, it looks before it types: a key that moves the focus (Tab, ``]``) is followed
by a wait until the focus visibly moved (the terminal cursor entered the field, the pane's
border lit up). Keys sent in one burst right after such a key can reach the widget that
had the focus before it, which no person at a keyboard ever manages.
"""

from __future__ import annotations

import grp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import write_template

BIN = Path(sys.executable).parent / "opsconsole"
WIDTH, HEIGHT = 160, 50
LABEL = "from-tmux"
TEMPLATE = "slow-count"
SLEEPER = "sleeper"
EXITED = "[opsconsole exited with status "

Check = str | Callable[[str], object]


class Tmux:
    """One tmux server on a private socket, holding one session that runs one command."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"opsconsole-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "console"
        self.config = workdir / "tmux.conf"
        self.config.write_text("set -g status off\n")

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
            env=terminal_env(),
        )

    def start(self, command: str) -> None:
        self.tmux(
            "new-session", "-d", "-s", self.session, "-x", str(WIDTH), "-y", str(HEIGHT), command
        )

    def keys(self, *keys: str) -> None:
        """Keys by tmux name (``Enter``, ``Tab``, ``C-s``) or single characters."""
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def screen(self, *, styled: bool = False) -> str:
        """The visible screen as text (``styled``: with its colours as escape sequences)."""
        return self.tmux(
            "capture-pane", "-p", *(["-e"] if styled else []), "-t", self.session
        ).stdout

    def info(self, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", self.session, fmt).stdout.strip()

    def styled_line(self, row: int) -> str:
        """One screen line with its colours, as escape sequences from its first cell on."""
        return self.tmux(
            "capture-pane", "-p", "-e", "-S", str(row), "-E", str(row), "-t", self.session
        ).stdout

    def focused_pane(self) -> str | None:
        """The table pane whose border is lit (its first cell styled unlike the others')."""
        lines = self.screen().splitlines()
        look = {}
        for title in ("Queue", "Running", "History"):
            row = next((i for i, ln in enumerate(lines) if f"╭─ {title}" in ln), None)
            if row is not None:
                look[title] = re.match(r"(?:\x1b\[[0-9;]*m)*", self.styled_line(row)).group(0)
        odd = [title for title, style in look.items() if list(look.values()).count(style) == 1]
        return odd[0] if len(odd) == 1 else None

    def cursor_row(self) -> int:
        """The terminal cursor's row: Textual puts it in the focused text field."""
        return int(self.info("#{cursor_y}"))

    def poll(self, check: Check, timeout: float, *, pane: str = "") -> str | None:
        """The screen (or one pane of it) once ``check`` (a text, or a predicate on the
        screen) holds; None after ``timeout`` seconds."""
        test = (lambda s: check in s) if isinstance(check, str) else check
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            shown = pane_text(screen, pane) if pane else screen
            if test(shown):
                return shown
            if EXITED in screen:
                pytest.fail(f"the console exited while waiting for {check!r}:\n{screen}")
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def wait_for_screen(self, check: Check, timeout: float = 10.0, *, pane: str = "") -> str:
        """Like ``poll``, but a timeout fails the test, showing the last screen."""
        shown = self.poll(check, timeout, pane=pane)
        if shown is None:
            where = f" in pane {pane!r}" if pane else ""
            pytest.fail(f"{check!r} not on screen{where} within {timeout}s:\n{self.screen()}")
        return shown

    def kill(self) -> None:
        self.tmux("kill-server", check=False)
        uid_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (uid_dir / self.socket).unlink(missing_ok=True)


def terminal_env() -> dict[str, str]:
    """This environment without a fixed terminal size: COLUMNS and LINES (set under pytest)
    would make the app ignore the pane's real size."""
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def pane_text(screen: str, title: str) -> str:
    """The bordered pane whose title starts with ``title``: its title line and its inside
    ('' when no such pane is on screen)."""
    lines = screen.splitlines()
    for top, line in enumerate(lines):
        left = line.find(f"╭─ {title}")
        if left < 0:
            continue
        right = line.find("╮", left)
        inside = []
        for below in lines[top + 1 :]:
            if len(below) <= left or below[left] == "╰":
                break
            inside.append(below[left + 1 : right])
        return "\n".join([line[left:right], *inside])
    return ""


def line_with(screen: str, text: str) -> tuple[int, str]:
    """The first (row, line) of ``screen`` that contains ``text``."""
    for row, line in enumerate(screen.splitlines()):
        if text in line:
            return row, line
    raise AssertionError(f"{text!r} not on screen:\n{screen}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    if not BIN.exists():
        pytest.skip("the opsconsole command is not installed in this environment")
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


@pytest.fixture
def console_env(tmp_path: Path, catalog: Path) -> dict[str, str]:
    """The console's settings, shared by the CLI commands a test runs beside it."""
    write_template(
        catalog,
        "greet",
        "description: Say hello\nrunner: shell\ncommand: [echo, 'Hello, {{ name }}!']\n"
        "params:\n  name: {type: string, default: world}\n",
    )
    # ~3 s: six steps of half a second, each a progress marker and a line of output
    script = (
        'for i in 1 2 3 4 5 6; do echo "::progress $((i * 16)) step $i of 6"; '
        'echo "tick $i of $LABEL"; sleep 0.5; done'
    )
    write_template(
        catalog,
        TEMPLATE,
        "description: Count to six slowly, reporting progress\nrunner: shell\n"
        f"command: [bash, -c, {script!r}]\n"
        "env: {LABEL: '{{ label }}'}\n"
        "params:\n  label: {type: string, required: true, description: What to count}\n",
    )
    # runs until cancelled (a minute at most), one line of output a tenth of a second
    ticks = 'for i in $(seq 1 600); do echo "tick $i of $LABEL"; sleep 0.1; done'
    write_template(
        catalog,
        SLEEPER,
        "description: Tick until cancelled\nrunner: shell\n"
        f"command: [bash, -c, {ticks!r}]\n"
        "env: {LABEL: '{{ label }}'}\n"
        "params:\n  label: {type: string, required: true}\n",
    )
    home = tmp_path / "tui-home"
    return {
        "OPSCONSOLE_HOME": str(home),
        "OPSCONSOLE_DB": str(home / "store.db"),
        "OPSCONSOLE_CATALOG": str(catalog),
        "OPSCONSOLE_POLL_INTERVAL": "0.1",
        "OPSCONSOLE_WORKERS": "2",
    }


@pytest.fixture
def console_command(console_env: dict[str, str]) -> str:
    assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in console_env.items())
    console = f"env -u COLUMNS -u LINES {assigns} {shlex.quote(str(BIN))}"
    # a shell reports the exit status on the screen and keeps the pane (and what the app
    # left on it) readable; tmux's own pane_dead_status is not reliable for this (tmux 3.3
    # can miss the SIGCHLD while it runs a child of its own, leaving the app a zombie)
    script = f'{console}; echo "{EXITED}$?]"; sleep 60'
    return f"sh -c {shlex.quote(script)}"


def test_submit_watch_read_the_log_and_see_history_in_a_real_terminal(tmux, console_command):
    tmux.start(console_command)

    # the first load is on screen and the embedded pool runs
    tmux.wait_for_screen("embedded pool", timeout=15)
    tmux.wait_for_screen("ID", pane="History")

    # the submit form: open the template Select, type to find the template, pick it
    tmux.keys("s")
    tmux.wait_for_screen("Submit a job")
    tmux.keys("Enter")
    tmux.wait_for_screen("greet — Say hello")  # the options are listed
    tmux.type("slow")
    tmux.keys("Enter")
    form = tmux.wait_for_screen("label (string) *")  # the template's fields are built

    # Tab until the cursor is in the label's field (the line under its label), then type
    field_row = line_with(form, "label (string) *")[0] + 2
    for _ in range(12):  # the form has fewer focus stops: Tab comes round
        tmux.keys("Tab")
        if tmux.poll(lambda _s: tmux.cursor_row() == field_row, timeout=1.0):
            break
    else:
        pytest.fail(f"Tab never put the cursor in the label field:\n{tmux.screen()}")
    tmux.type(LABEL)
    tmux.wait_for_screen(LABEL)
    tmux.keys("C-s")

    # it runs: the Running pane shows it, its progress moving past 0 %
    running = tmux.wait_for_screen(
        lambda s: re.search(rf"\b\w{{6}}\s+{TEMPLATE}\s+label=\S+\s.*\s([1-9]\d*)%", s),
        timeout=10,
        pane="Running",
    )
    match = re.search(rf"\b(\w{{6}})\s+{TEMPLATE}", running)
    assert match is not None, running
    job = match.group(1)
    assert "Submit a job" not in tmux.screen()  # the form closed

    # the log tail: ] (next pane) until the Running pane's border lights up, then follow
    focus_running(tmux)
    tmux.keys("f")
    log = tmux.wait_for_screen(f"tick 2 of {LABEL}", timeout=10, pane=f"Log {job}")
    assert "::progress" not in log  # markers update the job, they are not log output

    # it ends: History shows it succeeded, the log has its last line, Running lets it go
    tmux.wait_for_screen(
        lambda s: re.search(rf"{job}\s+{TEMPLATE}\s+succeeded\s", s), timeout=15, pane="History"
    )
    log = tmux.wait_for_screen(f"tick 6 of {LABEL}", timeout=5, pane=f"Log {job}")
    assert "succeeded" in log.splitlines()[0]  # the pane title follows the job's state
    tmux.wait_for_screen(lambda s: job not in s, timeout=5, pane="Running")
    tmux.wait_for_screen("ok 1", timeout=5)  # the status bar counts it

    # q quits at once when the embedded pool runs nothing, and cleanly
    tmux.keys("q")
    screen = tmux.wait_for_screen(EXITED, timeout=10)
    assert f"{EXITED}0]" in screen, screen
    assert "Traceback" not in screen, screen


def focus_running(tmux: Tmux) -> None:
    """] (next pane) until the Running pane's border lights up."""
    if tmux.focused_pane() == "Running":
        return
    for _ in range(4):
        tmux.keys("]")
        if tmux.poll(lambda _s: tmux.focused_pane() == "Running", timeout=2.0):
            return
    pytest.fail(f"] never focused the Running pane:\n{tmux.screen()}")


def submit(env: dict[str, str], label: str) -> str:
    """``opsconsole submit sleeper -p label=LABEL --json``: the new job's id."""
    done = subprocess.run(
        [str(BIN), "submit", SLEEPER, "-p", f"label={label}", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**terminal_env(), **env},
        check=True,
    )
    return str(json.loads(done.stdout)["id"])


def test_cancel_acts_on_the_running_job_under_the_cursor(tmux, console_env, console_command):
    first = submit(console_env, "first")
    second = submit(console_env, "second")
    tmux.start(console_command)
    tmux.wait_for_screen("embedded pool", timeout=15)
    tmux.wait_for_screen(lambda s: first in s and second in s, timeout=15, pane="Running")

    # ] (next pane) until the Running pane's border lights up: its cursor is on the oldest
    # job, and the log pane follows it
    focus_running(tmux)
    tmux.wait_for_screen("of first", timeout=10, pane=f"Log {first} {SLEEPER}")

    # Down: the cursor moves to the second job, and the log follows it
    tmux.keys("Down")
    tmux.wait_for_screen("of second", timeout=10, pane=f"Log {second} {SLEEPER}")

    # c asks about that job, y cancels it; the toast says what happens next
    tmux.keys("c")
    tmux.wait_for_screen(f"Cancel job {second} ({SLEEPER}, running)?", timeout=10)
    tmux.keys("y")
    tmux.wait_for_screen(f"cancellation of {second}", timeout=10)
    tmux.wait_for_screen(
        lambda s: re.search(rf"{second}\s+{SLEEPER}\s+cancelled\s", s), timeout=20, pane="History"
    )
    # the other job was not touched: it still runs
    running = tmux.wait_for_screen(lambda s: second not in s, timeout=10, pane="Running")
    assert first in running, running
    assert f"{first}  {SLEEPER}" not in (pane_text(tmux.screen(), "History") or "")

    # q: the pool still runs the first job; c in the quit dialog cancels it and quits
    tmux.keys("q")
    tmux.wait_for_screen("Quitting now would stop them", timeout=10)
    tmux.keys("c")
    screen = tmux.wait_for_screen(EXITED, timeout=30)
    assert f"{EXITED}0]" in screen, screen
    assert "Traceback" not in screen, screen


# -- a second OS user approves in the console --------------------------------------------

APPROVER_TAG = f"oct{os.getpid() % 100000}"


@dataclass(frozen=True)
class SharedHost:
    """A store shared through a unix group: root submits, ``approver`` runs the console."""

    base: Path
    home: Path
    catalog: Path
    group: str
    approver: str

    def env(self) -> dict[str, str]:
        return {
            "OPSCONSOLE_HOME": str(self.home),
            "OPSCONSOLE_CATALOG": str(self.catalog),
            "OPSCONSOLE_POLL_INTERVAL": "0.1",
        }

    def as_root(self, *args: str) -> dict:
        done = subprocess.run(
            [str(BIN), *args, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**terminal_env(), **self.env()},
            cwd=self.base,
            check=False,
        )
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def console_as_approver(self) -> str:
        """The console as ``approver``, through ``runuser`` inside the tmux pane (its
        terminal), with ``USER``/``LOGNAME`` claiming root: the login decides, not them."""
        site = sysconfig.get_paths()["purelib"]
        env = {
            **self.env(),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": f"{REPO}:{site}",
            "HOME": str(self.base),
            "TERM": "xterm-256color",
            "USER": "root",
            "LOGNAME": "root",
        }
        setenv = [f"{k}={v}" for k, v in env.items()]
        argv = [
            "runuser",
            "-u",
            self.approver,
            "--",
            "env",
            "-i",
            *setenv,
            *command_for(self.approver),
            "tui",
            "--no-workers",
        ]
        script = (
            f'cd {shlex.quote(str(self.base))}; {shlex.join(argv)}; echo "{EXITED}$?]"; sleep 60'
        )
        return f"sh -c {shlex.quote(script)}"


REPO = Path(__file__).resolve().parents[2]


def command_for(user: str) -> list[str]:
    """The installed command as ``user`` can run it: this venv's, or (when the venv's
    interpreter lives where ``user`` cannot reach, such as under /root) the same installed
    package on the system's Python of the same version."""
    real = os.path.realpath(sys.executable)
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", real], check=False)
    if probe.returncode == 0:
        return [str(BIN)]
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(system, os.X_OK):
        pytest.skip(f"{user} cannot run {real} and there is no {system}")
    return [system, "-m", "opsconsole"]


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture
def shared_host() -> Iterator[SharedHost]:
    """A group and an approver account made for this test (removed after), a setgid state
    directory in that group, a catalog with a gated template only the approver may approve."""
    if os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("needs root, useradd and runuser to act as another OS user")
    group, approver = f"{APPROVER_TAG}ops", f"{APPROVER_TAG}lead"
    made: list[tuple[str, str]] = []
    base = Path(tempfile.mkdtemp(prefix="oc-tmux-approve-"))
    try:
        _sh("groupadd", group)
        made.append(("groupdel", group))
        _sh("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", group, approver)
        made.append(("userdel", approver))
        base.chmod(0o755)
        home = base / "state"
        home.mkdir()
        os.chown(home, -1, grp.getgrnam(group).gr_gid)
        home.chmod(0o2770)
        (home / "opsconsole.toml").write_text(
            f'share_group = "{group}"\n'
            f'[roles]\nadmin = ["user:root"]\napprover = ["user:{approver}"]\n'
        )
        (home / "opsconsole.toml").chmod(0o644)
        catalog = base / "catalog"
        write_template(
            catalog,
            "restart",
            "description: Restart a service once someone else approves\nrunner: shell\n"
            "command: [echo, 'restarting {{ unit }}']\n"
            "params:\n  unit: {type: string, required: true}\n"
            f'approval:\n  required: 1\n  approvers: ["user:{approver}"]\n  expires: 4h\n',
        )
        for path in (catalog, *catalog.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield SharedHost(base, home, catalog, group, approver)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        for cmd, name in reversed(made):
            subprocess.run([cmd, name], capture_output=True, timeout=60, check=False)


@pytest.mark.slow
def test_a_second_os_user_approves_a_job_in_the_console(tmux, shared_host):
    host = shared_host
    job = host.as_root("submit", "restart", "-p", "unit=nginx.service")
    assert (job["state"], job["submitted_by"]) == ("awaiting_approval", "root")

    tmux.start(host.console_as_approver())
    # the header counts it, in the queue its row says what it waits for
    tmux.wait_for_screen("awaiting approval 1", timeout=20)
    tmux.wait_for_screen(
        lambda s: re.search(rf"{job['id']}\s+restart\s+approval\s+\d+\s+0/1 approvals", s),
        timeout=10,
        pane="Queue",
    )

    # a: the prompt on the selected job (the queue's only row), with what will run
    tmux.keys("a")
    prompt = tmux.wait_for_screen(f"Job {job['id']} awaits approval", timeout=10)
    assert "echo 'restarting nginx.service'" in prompt, prompt
    assert "Asked by    root" in prompt, prompt
    tmux.type("lgtm from the console")
    tmux.wait_for_screen("lgtm from the console")
    tmux.keys("C-o")
    tmux.wait_for_screen(f"approved {job['id']}: it is queued", timeout=15)
    tmux.wait_for_screen(lambda s: "awaiting approval" not in s, timeout=15)

    shown = host.as_root("jobs", "show", job["id"])
    assert shown["state"] == "queued"
    approved = [e for e in shown["events"] if e["kind"] == "approved"]
    assert [e["actor"] for e in approved] == [host.approver], shown["events"]

    tmux.keys("q")
    tmux.wait_for_screen(f"{EXITED}0]", timeout=15)
    assert "Traceback" not in tmux.screen()
