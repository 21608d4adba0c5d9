"""The catalog on disk: the only place that reads template files.

``Catalog.load`` turns each bad file into a ``CatalogProblem``, with its line where one can
be found, so one broken template never hides the rest.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opsconsole.core.catalog.messages import _short_list, _show
from opsconsole.core.catalog.schema import Template, _SchemaError, template_from_dict
from opsconsole.core.errors import InvalidParams, NotFound


@dataclass(frozen=True)
class CatalogProblem:
    """A template file that could not be loaded; the rest of the catalog still works."""

    path: str
    line: int | None
    message: str

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
    ) -> None:
        self.templates = templates
        self.problems = problems
        self.root = root

    @classmethod
    def load(cls, root: Path) -> Catalog:
        """Load ``root/templates/*.yaml``; bad files become problems instead of exceptions."""
        root = Path(root)
        directory = root / "templates"
        if not directory.is_dir():
            problem = CatalogProblem(str(directory), None, "template directory not found")
            return cls({}, [problem], root)
        templates: dict[str, Template] = {}
        problems: list[CatalogProblem] = []
        try:
            files = sorted(
                (
                    path
                    for path in directory.iterdir()
                    if path.suffix in (".yaml", ".yml")
                    and not path.name.startswith(".")  # editor lock and swap files
                    and path.is_file()
                ),
                key=lambda path: path.name,
            )
        except OSError as exc:
            problem = CatalogProblem(str(directory), None, f"cannot list: {exc.strerror or exc}")
            return cls({}, [problem], root)
        for path in files:
            loaded = _load_file(path)
            if isinstance(loaded, CatalogProblem):
                problems.append(loaded)
                continue
            template, text = loaded
            first = templates.get(template.name)
            if first is not None:
                message = f"duplicate template name '{template.name}' (already in {first.source})"
                problems.append(CatalogProblem(str(path), _find_line(text, ("name",)), message))
                continue
            templates[template.name] = template
        return cls(templates, problems, root)

    def get(self, name: str) -> Template:
        template = self.templates.get(name)
        if template is not None:
            return template
        if not self.templates:
            raise NotFound(f"unknown template '{_show(name)}' (no templates are loaded)")
        close = difflib.get_close_matches(name, self.templates, n=3, cutoff=0.6)
        ordered = close + [n for n in self.names() if n not in close]
        raise NotFound(f"unknown template '{_show(name)}' (known: {_short_list(ordered)})")

    def names(self) -> list[str]:
        return sorted(self.templates)

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def __len__(self) -> int:
        return len(self.templates)


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
                        f"found duplicate key '{_show(key_node.value)}'",
                        key_node.start_mark,
                    )
                seen.add(ident)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _load_file(path: Path) -> tuple[Template, str] | CatalogProblem:
    where = str(path)
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        return CatalogProblem(where, None, f"cannot read file: {exc.strerror or exc}")
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
    try:
        return template_from_dict(data, where), text
    except _SchemaError as exc:
        return CatalogProblem(where, _find_line(text, exc.path), str(exc))
    except InvalidParams as exc:
        return CatalogProblem(where, None, str(exc))


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
