"""Catalog paths: programs, template files and handler modules resolve inside the catalog.

Real directories, files, symbolic links and a FIFO in ``tmp_path``; nothing is run here
(tests/engine/test_program_paths.py runs jobs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from opsconsole.core.catalog import (
    MAX_TEMPLATE_BYTES,
    Catalog,
    check_handler_files,
    program_path,
    template_from_dict,
)
from opsconsole.core.errors import InvalidParams, NotFound


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A catalog dir with its templates/ and scripts/, next to an ``outside`` dir."""
    path = tmp_path / "catalog"
    (path / "templates").mkdir(parents=True)
    (path / "scripts").mkdir()
    (path / "scripts" / "deploy.sh").write_text("#!/bin/sh\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil.sh").write_text("#!/bin/sh\n")
    return path


def write(root: Path, filename: str, text: str) -> Path:
    path = root / "templates" / filename
    path.write_text(text)
    return path


def only_problem(root: Path) -> str:
    catalog = Catalog.load(root)
    assert catalog.templates == {}
    (problem,) = catalog.problems
    return str(problem)


# -- the program: a bare name or a path inside the catalog ----------------------------------


@pytest.mark.parametrize(
    "program",
    ["scripts/{{ name }}.sh", "{{ name }}", "/opt/{{name}}/run", "{{ name | lower }}"],
)
def test_a_placeholder_in_the_program_is_refused(program: str) -> None:
    data: dict[str, Any] = {
        "name": "t",
        "command": [program, "x"],
        "params": {"name": {"type": "string"}},
    }
    with pytest.raises(InvalidParams) as info:
        template_from_dict(data)
    message = str(info.value)
    assert message.startswith("command[0]: the program may not contain a placeholder")
    assert "a bare name from PATH or a script inside the catalog" in message


def test_placeholders_in_arguments_stay_allowed() -> None:
    data = {"name": "t", "command": ["scripts/deploy.sh", "{{ v }}"], "params": {"v": {}}}
    assert template_from_dict(data).command == ("scripts/deploy.sh", "{{ v }}")


def test_a_placeholder_in_env_path_is_refused(root: Path) -> None:
    write(
        root,
        "t.yaml",
        "name: t\ncommand: [deploy]\nenv:\n  PATH: '{{ dir }}:/usr/bin'\nparams: {dir: {}}\n",
    )
    problem = only_problem(root)
    assert problem.endswith(
        ":4: env.PATH may not contain a placeholder: it chooses the program a bare name runs"
    )


def test_a_program_path_resolves_inside_the_catalog(root: Path, tmp_path: Path) -> None:
    real = os.path.realpath(root / "scripts" / "deploy.sh")
    assert program_path("deploy", root) is None
    assert program_path("scripts/deploy.sh", root) == real
    assert program_path("./scripts/../scripts/deploy.sh", root) == real
    assert program_path(str(root / "scripts" / "deploy.sh"), root) == real
    # the catalog reached through a link is still the catalog
    (tmp_path / "current").symlink_to(root, target_is_directory=True)
    assert program_path("scripts/deploy.sh", tmp_path / "current") == real


@pytest.mark.parametrize(
    ("program", "bare"),
    [("../outside/evil.sh", "evil.sh"), ("scripts/../../outside/evil.sh", "evil.sh")],
)
def test_a_path_out_of_the_catalog_is_refused(
    root: Path, tmp_path: Path, program: str, bare: str
) -> None:
    with pytest.raises(InvalidParams) as info:
        program_path(program, root)
    assert str(info.value) == (
        f"program '{program}' resolves to {tmp_path / 'outside' / 'evil.sh'}, outside the "
        f"catalog {root}: use the bare name '{bare}' to run it from PATH, or put the script "
        "inside the catalog (links must point inside it too)"
    )


def test_an_absolute_program_outside_is_refused_at_load_with_its_line(root: Path) -> None:
    path = write(root, "t.yaml", "name: t\nrunner: shell\ncommand:\n  - /usr/bin/env\n  - x\n")
    problem = only_problem(root)
    assert problem.startswith(f"{path}:4: command[0]: program '/usr/bin/env' resolves to ")
    assert "use the bare name 'env' to run it from PATH" in problem


def test_a_program_through_a_link_out_of_the_catalog_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "scripts" / "evil.sh").symlink_to(tmp_path / "outside" / "evil.sh")
    (root / "bin").symlink_to(tmp_path / "outside", target_is_directory=True)
    write(root, "a.yaml", "name: a\ncommand: [scripts/evil.sh]\n")
    write(root, "b.yaml", "name: b\ncommand: [bin/evil.sh]\n")
    catalog = Catalog.load(root)
    assert catalog.templates == {}
    assert [p.line for p in catalog.problems] == [2, 2]
    for problem in catalog.problems:
        assert f"resolves to {tmp_path / 'outside' / 'evil.sh'}, outside the catalog" in str(
            problem
        )


def test_get_names_the_problem_of_a_refused_template(root: Path) -> None:
    write(root, "t.yaml", "name: t\ncommand: [../outside/evil.sh]\n")
    with pytest.raises(NotFound) as info:
        Catalog.load(root).get("t")
    assert str(info.value).startswith(
        f"template 't' is not loaded: {root / 'templates' / 't.yaml'}:2: command[0]: program"
    )


# -- template files ------------------------------------------------------------------------


def test_a_template_file_linked_from_outside_is_refused_unread(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "t.yaml"
    outside.write_text("name: planted\ncommand: [echo, hi]\n")
    link = root / "templates" / "t.yaml"
    link.symlink_to(outside)
    catalog = Catalog.load(root)
    assert "planted" not in catalog
    (problem,) = catalog.problems
    assert str(problem) == (
        f"{link}: resolves to {outside}, outside the template directory {root / 'templates'}: "
        "copy the template into the catalog instead of linking to it"
    )
    assert problem.template is None  # the file was never read


def test_a_link_inside_the_template_directory_loads(root: Path) -> None:
    (root / "templates" / "versions").mkdir()
    (root / "templates" / "versions" / "t-v2.yaml").write_text("name: t\ncommand: [echo]\n")
    (root / "templates" / "t.yaml").symlink_to(Path("versions") / "t-v2.yaml")
    catalog = Catalog.load(root)
    assert catalog.problems == []
    assert catalog.names() == ["t"]


def test_a_dangling_link_is_a_problem_not_skipped(root: Path) -> None:
    link = root / "templates" / "gone.yaml"
    link.symlink_to(root / "templates" / "missing.yaml")
    assert only_problem(root) == f"{link}: cannot read file: No such file or directory"


def test_a_fifo_is_a_problem_and_never_blocks(root: Path) -> None:
    fifo = root / "templates" / "pipe.yaml"
    os.mkfifo(fifo)
    assert only_problem(root) == f"{fifo}: not a regular file"


def test_a_template_directory_linked_from_outside_is_one_problem(
    root: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "shared-templates"
    elsewhere.mkdir()
    (elsewhere / "t.yaml").write_text("name: t\ncommand: [echo]\n")
    (root / "templates").rmdir()
    (root / "templates").symlink_to(elsewhere, target_is_directory=True)
    assert only_problem(root) == (
        f"{root / 'templates'}: template directory resolves to {elsewhere}, outside the "
        f"catalog {root}: make templates/ a directory of the catalog, or point the catalog "
        "setting at the directory that holds it"
    )


def test_a_template_directory_linked_within_the_catalog_loads(root: Path) -> None:
    (root / "releases" / "v2" / "templates").mkdir(parents=True)
    (root / "releases" / "v2" / "templates" / "t.yaml").write_text("name: t\ncommand: [echo]\n")
    (root / "templates").rmdir()
    (root / "templates").symlink_to(Path("releases") / "v2" / "templates")
    catalog = Catalog.load(root)
    assert catalog.problems == []
    assert catalog.names() == ["t"]


def test_a_huge_template_file_is_refused_unparsed(root: Path) -> None:
    # valid YAML at the start, broken YAML at the end: parsing would report the end
    path = root / "templates" / "big.yaml"
    with path.open("wb") as f:
        f.write(b"name: big\ncommand: [echo]\n# ")
        f.seek(10 * 1024 * 1024)
        f.write(b"\nnot: [closed\n")
    write(root, "small.yaml", "name: small\ncommand: [echo]\n")
    catalog = Catalog.load(root)
    assert catalog.names() == ["small"]
    (problem,) = catalog.problems
    assert str(problem) == (
        f"{path}: file is larger than 256 KiB and was not read: a template is a short YAML "
        "file (keep data in files the job reads)"
    )
    assert problem.template is None


def test_a_template_of_exactly_the_cap_loads(root: Path) -> None:
    head = b"name: t\ncommand: [echo]\n#"
    (root / "templates" / "t.yaml").write_bytes(
        head + b"x" * (MAX_TEMPLATE_BYTES - len(head) - 1) + b"\n"
    )
    assert (root / "templates" / "t.yaml").stat().st_size == MAX_TEMPLATE_BYTES
    catalog = Catalog.load(root)
    assert catalog.problems == []
    assert catalog.names() == ["t"]


# -- handler modules ------------------------------------------------------------------------


def test_a_handler_module_linked_from_outside_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside" / "inv.py").write_text("def run(ctx):\n    return 1\n")
    (root / "inv.py").symlink_to(tmp_path / "outside" / "inv.py")
    write(root, "t.yaml", "name: t\nrunner: python\nhandler: inv:run\n")
    problem = only_problem(root)
    assert problem.startswith(f"{root / 'templates' / 't.yaml'}:3: handler: handler module file ")
    assert f"resolves to {tmp_path / 'outside' / 'inv.py'}, outside the catalog {root}" in problem


def test_a_handler_package_linked_from_outside_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "outside" / "pkg").mkdir()
    (tmp_path / "outside" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "outside" / "pkg" / "jobs.py").write_text("def run(ctx):\n    return 1\n")
    (root / "pkg").symlink_to(tmp_path / "outside" / "pkg", target_is_directory=True)
    with pytest.raises(InvalidParams, match="outside the catalog"):
        check_handler_files("pkg.jobs:run", root)


def test_handler_modules_inside_the_catalog_or_installed_are_fine(root: Path) -> None:
    (root / "handlers" / "v2").mkdir(parents=True)
    (root / "handlers" / "v2" / "inv.py").write_text("def run(ctx):\n    return 1\n")
    (root / "inv.py").symlink_to(Path("handlers") / "v2" / "inv.py")
    write(root, "a.yaml", "name: a\nrunner: python\nhandler: inv:run\n")
    write(
        root, "b.yaml", "name: b\nrunner: python\nhandler: opsconsole.engine.handlers.http:check\n"
    )
    catalog = Catalog.load(root)
    assert catalog.problems == []
    assert catalog.names() == ["a", "b"]
