"""The catalog on disk: the only place that reads template files.

``Catalog.load`` turns each bad file into a ``CatalogProblem``, with its line where one can
be found, so one broken template never hides the rest. A template file is read only if it
resolves inside the template directory, and never past ``MAX_TEMPLATE_BYTES``; the programs
and handler modules a template names must resolve inside the catalog (``paths.py``).
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsconsole.core.catalog.approval import check_accounts
from opsconsole.core.catalog.messages import printable, short_list
from opsconsole.core.catalog.paths import (
    check_handler_files,
    is_inside,
    program_path,
    real,
    show_path,
)
from opsconsole.core.catalog.schema import SchemaError, Template, template_from_dict
from opsconsole.core.errors import InvalidParams, NotFound

MAX_TEMPLATE_BYTES = 256 * 1024
"""A template is a small YAML file: a bigger one is a mistake, and parsing it would stall
every command that loads the catalog, so it is refused unread past this size."""


@dataclass(frozen=True)
class CatalogProblem:
    """A template file that could not be loaded, or why the whole catalog could not be read.

    One bad file never hides the rest of the catalog; a catalog-wide problem (no such
    directory, no ``templates/``) is also ``Catalog.error``.
    """

    path: str
    line: int | None
    message: str
    template: str | None = None
    """The template name the file declares, when it got that far: ``get`` names the problem."""
    others: tuple[str, ...] = ()
    """The other files that declare the same template name: none of them is loaded."""

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class Catalog:
    """All loaded templates plus the problems found, so one bad file never hides the rest."""

    def __init__(
        self,
        templates: dict[str, Template],
        problems: list[CatalogProblem],
        root: Path | None = None,
        *,
        error: CatalogProblem | None = None,
    ) -> None:
        self.templates = templates
        self.problems = problems
        self.root = root
        self.error = error
        """Why the catalog as a whole could not be read (also in ``problems``), or None."""

    @property
    def directory(self) -> Path | None:
        """Where the template files are read from: ``ROOT/templates``."""
        return None if self.root is None else self.root / "templates"

    @classmethod
    def unreadable(cls, root: Path, path: Path, message: str) -> Catalog:
        problem = CatalogProblem(str(path), None, message)
        return cls({}, [problem], root, error=problem)

    @classmethod
    def load(cls, root: Path) -> Catalog:
        """Load ``root/templates/*.yaml``; bad files become problems instead of exceptions.

        A template name declared by two files loads neither: which one would win depends on
        file names, so a stray copy could silently replace the real template.
        """
        root = Path(root)
        directory = root / "templates"
        if not directory.is_dir():
            return cls.unreadable(root, *_no_template_directory(root))
        home = real(directory)
        if not is_inside(home, real(root)):
            message = (
                f"template directory resolves to {show_path(home)}, outside the catalog "
                f"{show_path(real(root))}: make templates/ a directory of the catalog, or "
                "point the catalog setting at the directory that holds it"
            )
            return cls.unreadable(root, directory, message)
        try:
            files = sorted(
                (
                    path
                    for path in directory.iterdir()
                    if path.suffix in (".yaml", ".yml")
                    and not path.name.startswith(".")  # editor lock and swap files
                    and (path.is_symlink() or not path.is_dir())  # a link is checked, not skipped
                ),
                key=lambda path: path.name,
            )
        except OSError as exc:
            return cls.unreadable(root, directory, f"cannot list: {exc.strerror or exc}")
        declared: dict[str, list[tuple[Path, Template, str]]] = {}
        problems: list[CatalogProblem] = []
        for path in files:
            loaded = _load_file(path, home, root)
            if isinstance(loaded, CatalogProblem):
                problems.append(loaded)
                continue
            template, text = loaded
            declared.setdefault(template.name, []).append((path, template, text))
        templates: dict[str, Template] = {}
        for name, found in declared.items():
            if len(found) == 1:
                templates[name] = found[0][1]
                continue
            for path, _, text in found:
                others = tuple(str(p) for p, _, _ in found if p != path)
                fix = (
                    "neither file is loaded until one of them is renamed (its name: line) or "
                    "removed"
                    if len(others) == 1
                    else "none of these files is loaded until all but one are renamed (their "
                    "name: line) or removed"
                )
                message = (
                    f"template name '{printable(name)}' is also declared by {', '.join(others)}: "
                    + fix
                )
                line = _find_line(text, ("name",))
                problems.append(CatalogProblem(str(path), line, message, name, others))
        problems.sort(key=lambda p: p.path)
        return cls(templates, problems, root)

    def get(self, name: str) -> Template:
        template = self.templates.get(name)
        if template is not None:
            return template
        if self.error is not None:
            raise NotFound(f"template '{printable(name)}' not found: {self.error.message}")
        for problem in self.problems:
            if problem.template == name and problem.others:
                raise NotFound(_ambiguous(name, [problem.path, *problem.others]))
        for problem in self.problems:
            if problem.template == name:
                raise NotFound(f"template '{printable(name)}' is not loaded: {problem}")
        if not self.templates:
            raise NotFound(f"unknown template '{printable(name)}' (no templates are loaded)")
        close = difflib.get_close_matches(name, self.templates, n=3, cutoff=0.6)
        ordered = close + [n for n in self.names() if n not in close]
        raise NotFound(f"unknown template '{printable(name)}' (known: {short_list(ordered)})")

    def ambiguity(self, name: str) -> str | None:
        """Why jobs of ``name`` must not run: two files declare it; None when only one does."""
        for problem in self.problems:
            if problem.template == name and problem.others:
                return _ambiguous(name, [problem.path, *problem.others])
        return None

    def names(self) -> list[str]:
        return sorted(self.templates)

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __len__(self) -> int:
        return len(self.templates)

    @staticmethod
    def stamp(root: Path) -> tuple[object, ...]:
        """A cheap fingerprint of the template files (names, sizes, times): when it changes,
        the catalog on disk may have changed and is worth loading again."""
        directory = Path(root) / "templates"
        try:
            with os.scandir(directory) as entries:
                files = sorted(
                    (e.name, st.st_ino, st.st_size, st.st_mtime_ns)
                    for e in entries
                    for st in (e.stat(follow_symlinks=False),)
                )
            here = directory.stat()
        except OSError as exc:
            return (str(directory), exc.errno)
        return (str(directory), here.st_ino, here.st_mtime_ns, tuple(files))


def _ambiguous(name: str, paths: list[str]) -> str:
    files = sorted(paths)
    if len(files) == 2:
        return (
            f"template '{printable(name)}' is declared by both {files[0]} and {files[1]}, so "
            "neither is loaded: rename one of them (its name: line) or remove the stray file"
        )
    return (
        f"template '{printable(name)}' is declared by {len(files)} files ({', '.join(files)}), so "
        "none is loaded: rename (their name: line) or remove all but one"
    )


def _no_template_directory(root: Path) -> tuple[Path, str]:
    """What is wrong with a catalog that has no ``templates/`` directory, and how to fix it."""
    directory = root / "templates"
    shown, listed = show_path(root), show_path(directory)
    if not root.exists():
        return root, (
            f"catalog directory {shown} does not exist: create it with templates/ inside, "
            "or set OPSCONSOLE_CATALOG / --catalog to the catalog you mean"
        )
    if not root.is_dir():
        return root, (
            f"catalog {shown} is not a directory: set OPSCONSOLE_CATALOG / --catalog to the "
            "directory that holds templates/"
        )
    if directory.exists():
        return directory, (
            f"{listed} is not a directory: make it the directory of template files (*.yaml)"
        )
    try:
        flat = [p for p in root.iterdir() if p.suffix in (".yaml", ".yml")]
    except OSError as exc:
        return root, f"cannot list catalog directory {shown}: {exc.strerror or exc}"
    if flat:
        return root, (
            f"found {len(flat)} template file(s) in {shown} but none in {listed}/: "
            f"move the files into {listed}/"
        )
    return root, (
        f"catalog directory {shown} has no templates/ directory: create {listed}/ and put "
        "template files (*.yaml) in it"
    )


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, refusing duplicate keys: YAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key '{printable(key_node.value)}'",
                        key_node.start_mark,
                    )
                seen.add(ident)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _load_file(path: Path, home: str, root: Path) -> tuple[Template, str] | CatalogProblem:
    """One template file; ``home`` is the resolved template directory, ``root`` the catalog."""
    where = str(path)
    data_bytes = _read_template(path, home)
    if isinstance(data_bytes, CatalogProblem):
        return data_bytes
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data_bytes.count(b"\n", 0, exc.start) + 1
        message = f"not valid UTF-8 (byte 0x{data_bytes[exc.start]:02x} at offset {exc.start})"
        return CatalogProblem(where, line, message)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return CatalogProblem(where, line, f"invalid YAML: {exc.problem or exc.context or exc}")
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        return CatalogProblem(where, line, f"invalid YAML: {exc.reason} (#x{exc.character:04x})")
    except yaml.YAMLError as exc:
        return CatalogProblem(where, None, f"invalid YAML: {exc}")
    declared = data.get("name") if isinstance(data, dict) else None
    name = declared if isinstance(declared, str) else None
    try:
        template = template_from_dict(data, where)
    except SchemaError as exc:
        return CatalogProblem(where, _find_line(text, exc.path), str(exc), name)
    except InvalidParams as exc:
        return CatalogProblem(where, None, str(exc), name)
    outside = _outside_the_catalog(template, root)
    if outside is not None:
        key, message = outside
        return CatalogProblem(where, _find_line(text, key), message, name)
    if template.approval is not None:
        unmet = check_accounts(template.approval)
        if unmet is not None:
            return CatalogProblem(where, _find_line(text, ("approval", "approvers")), unmet, name)
    return template, text


def _outside_the_catalog(
    template: Template, root: Path
) -> tuple[tuple[str | int, ...], str] | None:
    """The key and message of a program or handler module that resolves outside the catalog."""
    try:
        if template.command is not None:
            program_path(template.command[0], root)
    except InvalidParams as exc:
        return ("command", 0), f"command[0]: {exc}"
    try:
        if template.handler is not None:
            check_handler_files(template.handler, root)
    except InvalidParams as exc:
        return ("handler",), f"handler: {exc}"
    return None


def _read_template(path: Path, home: str) -> bytes | CatalogProblem:
    """The file's bytes, if it resolves inside ``home`` and is at most the size cap.

    The resolved path is checked before the file is opened (nothing outside is even opened)
    and again on the open descriptor, so a link swapped in between is caught too.
    """
    where = str(path)
    target = real(path)
    if not is_inside(target, home):
        return _outside(where, target, home)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        return CatalogProblem(where, None, f"cannot read file: {exc.strerror or exc}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return CatalogProblem(where, None, "not a regular file")
        opened = _opened_path(fd)
        if opened is not None and not is_inside(opened, home):
            return _outside(where, opened, home)
        data = _read_at_most(fd, MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        return CatalogProblem(where, None, f"cannot read file: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > MAX_TEMPLATE_BYTES:
        message = (
            f"file is larger than {MAX_TEMPLATE_BYTES // 1024} KiB and was not read: "
            "a template is a short YAML file (keep data in files the job reads)"
        )
        return CatalogProblem(where, None, message)
    return data


def _outside(where: str, target: str, home: str) -> CatalogProblem:
    message = (
        f"resolves to {show_path(target)}, outside the template directory "
        f"{show_path(home)}: copy the template into the catalog instead of linking to it"
    )
    return CatalogProblem(where, None, message)


def _opened_path(fd: int) -> str | None:
    """What an open descriptor really is (Linux ``/proc``); None where that cannot be known."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _find_line(text: str, path: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node on ``path`` that exists; best effort, only on errors."""
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
    except yaml.YAMLError:
        return None
    line: int | None = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
