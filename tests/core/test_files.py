"""Modes of the state files: private by default, one group's when shared, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsconsole.core.errors import InvalidParams
from opsconsole.core.files import PRIVATE, access_for, create_file, make_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_is_private():
    assert access_for("") is PRIVATE
    assert (PRIVATE.dir_mode, PRIVATE.file_mode, PRIVATE.key_mode) == (0o700, 0o600, 0o600)


def test_a_shared_group_by_name_or_number(tmp_path: Path):
    import grp

    mine = grp.getgrgid(os.getgid())
    by_name, by_number = access_for(mine.gr_name), access_for(str(mine.gr_gid))
    assert by_name == by_number
    assert (by_name.dir_mode, by_name.file_mode, by_name.key_mode) == (0o2770, 0o660, 0o640)


def test_an_unknown_group_is_refused():
    with pytest.raises(InvalidParams, match=r"^share_group: no group 'no-such-group-x' on this"):
        access_for("no-such-group-x")


def test_directories_are_made_private_with_their_parents_only_when_asked(
    tmp_path: Path, usual_umask: None
):
    deep = tmp_path / "a" / "b" / "home"
    with pytest.raises(FileNotFoundError):
        make_dir(deep, PRIVATE)
    assert not (tmp_path / "a").exists()
    assert make_dir(deep, PRIVATE, parents=True)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3
    assert not make_dir(deep, PRIVATE)  # already there: left as it is


def test_files_get_exactly_their_mode_whatever_the_umask(tmp_path: Path):
    old = os.umask(0o077)  # stricter than the mode asked: still exactly that mode
    try:
        shared = access_for(str(os.getgid()))
        assert create_file(tmp_path / "f", shared.file_mode, shared)
    finally:
        os.umask(old)
    assert mode(tmp_path / "f") == 0o660
    assert not create_file(tmp_path / "f", 0o600, PRIVATE)  # exists: untouched
    assert mode(tmp_path / "f") == 0o660


def test_remove_tree_removes_everything_or_says_what_stays(tmp_path: Path) -> None:
    import subprocess

    from opsconsole.core.files import remove_tree

    gone = tmp_path / "gone"
    (gone / "a" / "b").mkdir(parents=True)
    (gone / "a" / "b" / "vars.yml").write_text("token: x\n")
    assert remove_tree(gone) is None and not gone.exists()

    stuck = tmp_path / "stuck"
    busy = stuck / "busy"
    busy.mkdir(parents=True)
    # a mount point cannot be removed (EBUSY), not even by root: a real refusal
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(busy)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        said = remove_tree(stuck)
        assert said is not None and str(stuck) in said and "\n" not in said
        assert busy.exists()
    finally:
        subprocess.run(["umount", str(busy)], check=True)
