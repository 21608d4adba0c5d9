"""Settings: flags > OPSCONSOLE_* env > opsconsole.toml > defaults, one-line errors, docs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from opsconsole.config import Settings, load_settings
from opsconsole.core.errors import InvalidParams


def toml(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_defaults(tmp_path: Path):
    s = load_settings()
    home = tmp_path / "xdg" / "opsconsole"
    assert s.home == home
    assert s.db == f"sqlite:///{home / 'opsconsole.db'}"
    assert s.catalog == home / "catalog"
    assert s.lease == 30.0
    assert s.page_size == 50
    assert s.workers == (os.cpu_count() or 2)


def test_precedence_flags_then_env_then_file_then_defaults(monkeypatch):
    toml(
        Path.cwd() / "opsconsole.toml", "[opsconsole]\nlease = 10\npage_size = 7\nkill_grace = 4\n"
    )
    s = load_settings()
    assert (s.lease, s.page_size, s.kill_grace, s.drain_grace) == (10.0, 7, 4.0, 30.0)

    monkeypatch.setenv("OPSCONSOLE_LEASE", "20")
    monkeypatch.setenv("OPSCONSOLE_PAGE_SIZE", "8")
    s = load_settings()
    assert (s.lease, s.page_size, s.kill_grace) == (20.0, 8, 4.0)

    s = load_settings(lease=40, page_size=None)  # None means the flag was not given
    assert (s.lease, s.page_size, s.kill_grace) == (40.0, 8, 4.0)


def test_opsconsole_config_names_the_file(monkeypatch, tmp_path: Path):
    toml(Path.cwd() / "opsconsole.toml", "lease = 10\n")
    other = toml(tmp_path / "etc" / "ops.toml", "lease = 11\n")
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(other))
    assert load_settings().lease == 11.0
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidParams, match="config file not found"):
        load_settings()


def test_the_file_in_home_is_read_when_cwd_has_none(tmp_path: Path):
    home = tmp_path / "h"
    toml(home / "opsconsole.toml", "page_size = 9\n")
    assert load_settings(home=home).page_size == 9


def test_derived_paths(tmp_path: Path):
    (Path.cwd() / "data" / "templates").mkdir(parents=True)
    s = load_settings(db="state/ops.db")
    assert s.db == f"sqlite:///{Path.cwd() / 'state' / 'ops.db'}"
    assert s.catalog == Path.cwd() / "data"
    assert load_settings(db="postgresql://h/ops").db == "postgresql://h/ops"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("OPSCONSOLE_LEASE", "soon", "OPSCONSOLE_LEASE: 'lease' must be a float, got 'soon'"),
        ("OPSCONSOLE_WORKERS", "2.5", "OPSCONSOLE_WORKERS: 'workers' must be a int"),
        ("OPSCONSOLE_PAGE_SIZE", "-1", "'page_size' must not be negative"),
        ("OPSCONSOLE_LEASE", "nan", "'lease' must be a finite number"),
        ("OPSCONSOLE_KILL_GRACE", "inf", "'kill_grace' must be a finite number"),
    ],
)
def test_bad_env_values_are_one_line_errors(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(InvalidParams) as err:
        load_settings()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("lease = 'soon'\n", "'lease' must be a float"),
        ("leese = 3\n", "unknown setting 'leese'"),
        ("lease = \n", "invalid TOML"),
        ("opsconsole = 3\n", "[opsconsole] must be a table"),
        ("workers = true\n", "'workers' must be a int, got True"),
        ("workers = 2.5\n", "'workers' must be a int, got 2.5"),
        ("lease = [1]\n", "'lease' must be a float"),
    ],
)
def test_bad_file_values_are_one_line_errors(body, message):
    path = toml(Path.cwd() / "opsconsole.toml", body)
    with pytest.raises(InvalidParams) as err:
        load_settings()
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_flag_values_name_the_flag():
    with pytest.raises(InvalidParams, match="--poll-interval: 'poll_interval' must be a float"):
        load_settings(poll_interval="often")


def test_every_setting_is_documented_and_configurable(monkeypatch):
    for f in dataclasses.fields(Settings):
        doc = f.metadata.get("doc", "")
        assert doc.strip(), f"Settings.{f.name} has no doc"
        assert doc.strip().endswith((".", ")")), f.name
    s = load_settings()
    assert s.doc("lease").startswith("Seconds a running job's lease lasts")
    # every field can come from the environment
    for f in dataclasses.fields(Settings):
        value = {
            "home": "/tmp/x",
            "db": "sqlite:////tmp/x.db",
            "catalog": "/tmp/c",
            "supervision": "pgroup",
        }.get(f.name, "3")
        monkeypatch.setenv("OPSCONSOLE_" + f.name.upper(), value)
    s = load_settings()
    assert s.page_size == 3
    assert s.home == Path("/tmp/x")
    assert s.secret_key == "3"
    assert s.supervision == "pgroup"


def test_a_slot_count_out_of_range_is_refused_from_any_source(monkeypatch, tmp_path):
    """One rule for slots: the environment and the config file get it too, not only flags."""
    import pytest

    from opsconsole.config import check_slots, load_settings
    from opsconsole.core.errors import InvalidParams

    monkeypatch.setenv("OPSCONSOLE_WORKERS", "999")
    with pytest.raises(
        InvalidParams, match="OPSCONSOLE_WORKERS: 'workers' must be between 1 and 256"
    ):
        load_settings()
    monkeypatch.setenv("OPSCONSOLE_WORKERS", "8")
    assert load_settings().workers == 8
    monkeypatch.delenv("OPSCONSOLE_WORKERS")
    assert load_settings().workers >= 1  # 0 / unset: the CPU count
    assert check_slots(256, "--workers") == 256
    with pytest.raises(InvalidParams, match="--workers must be between 1 and 256, got 0"):
        check_slots(0, "--workers")


def test_a_setting_with_choices_refuses_anything_else(monkeypatch):
    import pytest

    from opsconsole.core.errors import InvalidParams

    monkeypatch.setenv("OPSCONSOLE_SUPERVISION", "cgroups")
    with pytest.raises(InvalidParams, match="must be one of auto, cgroup, pgroup"):
        load_settings()
