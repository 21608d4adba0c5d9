"""The template catalog: loading, schema errors with lines, parameter coercion, rendering."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsconsole.core.catalog import (
    MAX_PARAM_BYTES,
    PRIORITIES,
    Catalog,
    CatalogProblem,
    ParamType,
    Template,
    format_duration,
    parse_duration,
    parse_priority,
    priority_name,
    render,
    render_argv,
    template_from_dict,
    validate_params,
)
from opsconsole.core.errors import InvalidParams, NotFound

FULL = """\
name: restart-service
description: Restart a systemd unit
runner: shell
command: ["systemctl", "restart", "{{ unit }}"]
env: {API_TOKEN: "{{ token }}"}
params:
  unit:   {type: string, required: true, pattern: "^[a-z0-9@._-]+$", description: "the unit"}
  count:  {type: integer, default: 1, min: 1, max: 10}
  ratio:  {type: number, min: 0, max: 1}
  mode:   {type: choice, choices: [fast, safe], default: safe}
  force:  {type: boolean, default: false}
  hosts:  {type: list, default: []}
  token:  {type: string, secret: true}
priority: high
timeout: 10m
retries: 2
backoff: 5s
concurrency: {key: "svc-{{ unit }}", limit: 1}
on_interrupt: requeue
partial_exit_codes: [3]
tags: [ops]
"""

PREFIX = "template 'restart-service': "


def full() -> Template:
    return template_from_dict(yaml.safe_load(FULL), "full.yaml")


def shell(params: dict[str, Any] | None = None, **extra: Any) -> Template:
    data: dict[str, Any] = {"name": "t", "runner": "shell", "command": ["echo"]}
    if params is not None:
        data["params"] = params
    data.update(extra)
    return template_from_dict(data)


def write(root: Path, filename: str, text: str) -> Path:
    directory = root / "templates"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def simple(name: str) -> str:
    return f"name: {name}\nrunner: shell\ncommand: [echo, hi]\n"


def schema_error(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidParams) as info:
        template_from_dict(data)
    return str(info.value)


# --- the template schema ------------------------------------------------------------------


def test_full_example_loads_every_field() -> None:
    t = full()
    assert t.name == "restart-service"
    assert t.description == "Restart a systemd unit"
    assert t.runner == "shell"
    assert t.command == ("systemctl", "restart", "{{ unit }}")
    assert t.env == {"API_TOKEN": "{{ token }}"}
    assert t.handler is None
    assert t.isolate is False
    assert list(t.params) == ["unit", "count", "ratio", "mode", "force", "hosts", "token"]
    assert t.params["unit"].type is ParamType.STRING
    assert t.params["unit"].required is True
    assert t.params["unit"].pattern == "^[a-z0-9@._-]+$"
    assert t.params["unit"].description == "the unit"
    assert t.params["count"].default == 1
    assert (t.params["count"].min, t.params["count"].max) == (1, 10)
    assert t.params["mode"].choices == ("fast", "safe")
    assert t.params["hosts"].default == []
    assert t.priority == 10
    assert t.timeout_s == 600.0
    assert t.retries == 2
    assert t.backoff_s == 5.0
    assert t.concurrency_key == "svc-{{ unit }}"
    assert t.concurrency_limit == 1
    assert t.on_interrupt == "requeue"
    assert t.partial_exit_codes == (3,)
    assert t.tags == ("ops",)
    assert t.source == "full.yaml"
    assert t.secret_names() == frozenset({"token"})


def test_minimal_template_gets_documented_defaults() -> None:
    t = shell()
    assert t.params == {}
    assert t.env == {}
    assert t.priority == 5
    assert t.timeout_s is None
    assert t.retries == 0
    assert t.backoff_s == 5.0
    assert t.concurrency_key is None
    assert t.concurrency_limit == 1
    assert t.on_interrupt == "mark"
    assert t.partial_exit_codes == ()
    assert t.tags == ()
    assert t.source == ""


def test_raw_snapshot_rebuilds_the_same_template() -> None:
    t = full()
    rebuilt = template_from_dict(t.raw)
    assert rebuilt == dataclasses.replace(t, source="")
    assert t.raw["params"]["unit"]["pattern"] == "^[a-z0-9@._-]+$"


def test_python_runner() -> None:
    t = template_from_dict(
        {
            "name": "probe",
            "runner": "python",
            "handler": "opsconsole.engine.handlers.http:check",
            "isolate": True,
            "env": {"A": "1"},
        }
    )
    assert (t.runner, t.handler, t.isolate, t.command, t.env) == (
        "python",
        "opsconsole.engine.handlers.http:check",
        True,
        None,
        {"A": "1"},
    )


@pytest.mark.parametrize(("extra", "isolate"), [({}, True), ({"isolate": False}, False)])
def test_python_handlers_run_isolated_unless_told_otherwise(
    extra: dict[str, bool], isolate: bool
) -> None:
    t = template_from_dict({"name": "probe", "runner": "python", "handler": "m:f", **extra})
    assert t.isolate is isolate
    assert template_from_dict(t.raw).isolate is isolate


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Bad Name", "command": ["x"]}, "name must match ^[a-z0-9][a-z0-9_-]*$"),
        ({"name": "-x", "command": ["x"]}, "name must match"),
        ({"runner": "shell", "command": ["x"]}, "missing required key 'name'"),
        ({"name": "a", "runner": "ansible"}, "runner ansible needs an ansible: block"),
        ({"name": "a", "runner": "terraform"}, "runner terraform needs a terraform: block"),
        (
            {"name": "a", "runner": "perl"},
            "unknown runner 'perl' (use shell, python, ansible, terraform)",
        ),
        ({"name": "a", "runner": "shell"}, "runner shell needs a command"),
        ({"name": "a", "command": "rm -rf /tmp/x"}, "command must be a non-empty list"),
        ({"name": "a", "runner": "python"}, "runner python needs a handler"),
        ({"name": "a", "runner": "python", "handler": "nocolon"}, "handler must look like"),
        (
            {"name": "a", "runner": "python", "handler": "m:f", "command": ["x"]},
            "command is only for runner shell",
        ),
        (
            {
                "name": "a",
                "runner": "python",
                "handler": "m:f",
                "isolate": False,
                "env": {"A": "1"},
            },
            "env needs isolate: true",
        ),
        ({"name": "a", "command": ["x"], "handler": "m:f"}, "handler is only for runner python"),
        ({"name": "a", "command": ["x"], "comand": ["y"]}, "unknown key 'comand'"),
        ({"name": "a", "command": ["x"], "retries": -1}, "retries must be an integer >= 0"),
        ({"name": "a", "command": ["x"], "timeout": "5x"}, "timeout: invalid duration '5x'"),
        ({"name": "a", "command": ["x"], "priority": "urgent"}, "invalid priority 'urgent'"),
        ({"name": "a", "command": ["x"], "on_interrupt": "retry"}, "on_interrupt must be mark"),
        ({"name": "a", "command": ["x"], "concurrency": {"limit": 2}}, "concurrency.key must"),
        (
            {"name": "a", "command": ["x"], "concurrency": {"key": "k", "limit": 0}},
            "concurrency.limit must be an integer >= 1",
        ),
        ({"name": "a", "command": ["x"], "partial_exit_codes": [0]}, "integers 1..255"),
        ({"name": "a", "command": ["x"], "tags": "ops"}, "tags must be a list of strings"),
        ({"name": "a", "command": ["x"], "env": {"1X": "v"}}, "env name '1X' must match"),
    ],
)
def test_template_schema_errors(data: dict[str, Any], message: str) -> None:
    assert message in schema_error(data)


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    msg = schema_error({"name": "a", "command": ["x"], "timout": "5s"})
    assert msg == "unknown key 'timout' (did you mean 'timeout'?)"


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"type": "int"}, "params.p.type: unknown type 'int' (use string, integer, number,"),
        ({"type": "string", "patern": "x"}, "unknown key 'params.p.patern'"),
        ({"type": "string", "pattern": "("}, "params.p.pattern is not a valid regular expression"),
        ({"type": "integer", "pattern": "x"}, "params.p.pattern only applies to string and list"),
        ({"type": "string", "min": 1}, "params.p.min only applies to integer and number"),
        ({"type": "integer", "min": 5, "max": 1}, "params.p.min must not be greater than max"),
        ({"type": "choice"}, "params.p.choices must be a non-empty list of strings"),
        ({"type": "choice", "choices": [True, False]}, "quote YAML words like 'yes'"),
        ({"type": "integer", "default": 11, "max": 10}, "params.p.default must be <= 10"),
        ({"type": "integer", "default": "abc"}, "params.p.default must be an integer, got 'abc'"),
        ({"type": "choice", "choices": ["a"], "default": "b"}, "default must be one of: a"),
        ({"type": "string", "pattern": "[a-z]+", "default": "A"}, "default does not match [a-z]+"),
        ({"type": "list", "default": "a,{}"}, None),  # valid: "{}" is an ordinary item
        ({"type": "string", "required": True, "default": "x"}, "cannot have a default"),
        ({"type": "boolean", "required": "yes"}, "params.p.required must be true or false"),
    ],
)
def test_param_schema_errors(param: dict[str, Any], message: str | None) -> None:
    data = {"name": "a", "command": ["x"], "params": {"p": param}}
    if message is None:
        assert template_from_dict(data).params["p"].default == ["a", "{}"]
    else:
        assert message in schema_error(data)


def test_defaults_are_coerced_when_loaded() -> None:
    t = shell({"n": {"type": "integer", "default": "7"}, "b": {"type": "boolean", "default": "on"}})
    assert t.params["n"].default == 7
    assert t.params["b"].default is True


@pytest.mark.parametrize(
    ("where", "data"),
    [
        ("command[1]", {"command": ["echo", "{{ nope }}"]}),
        ("env.X", {"command": ["echo"], "env": {"X": "{{ nope }}"}}),
        ("concurrency.key", {"command": ["echo"], "concurrency": {"key": "k-{{nope}}"}}),
    ],
)
def test_placeholder_must_name_a_declared_param(where: str, data: dict[str, Any]) -> None:
    data = {"name": "a", "params": {"unit": {"type": "string"}}, **data}
    msg = schema_error(data)
    assert msg == (
        f"{where}: placeholder '{{{{ nope }}}}' names no declared parameter (declared: unit)"
    )


def test_jinja_filters_are_refused_not_passed_through() -> None:
    msg = schema_error(
        {"name": "a", "command": ["echo", "{{ unit | upper }}"], "params": {"unit": {}}}
    )
    assert "command[1]: '{{ unit | upper }}' is not supported" in msg


def test_go_template_braces_stay_literal() -> None:
    t = shell(command=["docker", "ps", "--format", "{{.Names}}"])
    assert render_argv(t.command or (), {}) == ["docker", "ps", "--format", "{{.Names}}"]


# --- parameters ---------------------------------------------------------------------------


def test_defaults_fill_every_declared_param() -> None:
    assert validate_params(full(), {"unit": "nginx"}) == {
        "unit": "nginx",
        "count": 1,
        "ratio": None,
        "mode": "safe",
        "force": False,
        "hosts": [],
        "token": None,
    }


def test_list_default_is_copied_per_call() -> None:
    t = full()
    first = validate_params(t, {"unit": "a"})
    first["hosts"].append("x")
    assert validate_params(t, {"unit": "a"})["hosts"] == []
    assert t.params["hosts"].default == []


def test_none_counts_as_not_given() -> None:
    assert validate_params(full(), {"unit": "a", "count": None})["count"] == 1


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("count", "7", 7),
        ("count", " 3 ", 3),
        ("count", 4, 4),
        ("count", 5.0, 5),
        ("ratio", "0.5", 0.5),
        ("ratio", ".25", 0.25),
        ("ratio", 1, 1.0),
        ("ratio", "1e-1", 0.1),
        ("force", "true", True),
        ("force", "YES", True),
        ("force", "On", True),
        ("force", "1", True),
        ("force", "false", False),
        ("force", "no", False),
        ("force", "OFF", False),
        ("force", "0", False),
        ("force", True, True),
        ("force", 0, False),
        ("mode", "fast", "fast"),
        ("hosts", '["a", "b c"]', ["a", "b c"]),
        ("hosts", "a,b", ["a", "b"]),
        ("hosts", " a , b ,", ["a", "b"]),
        ("hosts", "", []),
        ("hosts", ["x", "y"], ["x", "y"]),
        ("hosts", ("x",), ["x"]),
        ("unit", "nginx@1.service", "nginx@1.service"),
    ],
)
def test_coercion(name: str, given: Any, expected: Any) -> None:
    value = validate_params(full(), {"unit": "u", name: given})[name]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("count", "abc", "parameter 'count' must be an integer, got 'abc'"),
        ("count", "1.5", "parameter 'count' must be an integer, got '1.5'"),
        ("count", 1.5, "parameter 'count' must be an integer, got '1.5'"),
        ("count", True, "parameter 'count' must be an integer"),
        ("count", "", "parameter 'count' must be an integer, got ''"),
        ("count", "11", "parameter 'count' must be <= 10"),
        ("count", "0", "parameter 'count' must be >= 1"),
        ("ratio", "half", "parameter 'ratio' must be a number, got 'half'"),
        ("ratio", "nan", "parameter 'ratio' must be a number, got 'nan'"),
        ("ratio", "1e999", "parameter 'ratio' must be a finite number"),
        ("ratio", "1.5", "parameter 'ratio' must be <= 1"),
        ("ratio", False, "parameter 'ratio' must be a number"),
        ("force", "maybe", "parameter 'force' must be a boolean"),
        ("force", 2, "parameter 'force' must be a boolean"),
        ("mode", "turbo", "parameter 'mode' must be one of: fast, safe"),
        ("hosts", "[a, b]", "parameter 'hosts' must be a JSON array of strings"),
        ("hosts", {"a": 1}, "parameter 'hosts' must be a list of strings, got a mapping"),
        ("hosts", '[["a"]]', "parameter 'hosts' items must be strings, got a list"),
        ("hosts", 5, "parameter 'hosts' must be a list of strings, got an integer"),
        ("unit", "Bad Unit", "parameter 'unit' does not match ^[a-z0-9@._-]+$"),
        ("unit", ["a"], "parameter 'unit' must be a string, got a list"),
    ],
)
def test_coercion_errors(name: str, given: Any, message: str) -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unit": "u", name: given})
    assert str(info.value).startswith(PREFIX + message)


def test_exact_error_lines() -> None:
    t = full()
    cases = {
        "count": ("abc", "parameter 'count' must be an integer, got 'abc'"),
        "mode": ("turbo", "parameter 'mode' must be one of: fast, safe"),
        "unit": ("A B", "parameter 'unit' does not match ^[a-z0-9@._-]+$"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(InvalidParams) as info:
            validate_params(t, {"unit": "u", name: value})
        assert str(info.value) == PREFIX + message


def test_missing_required_parameter() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"count": 2})
    assert str(info.value) == PREFIX + "missing required parameter 'unit'"


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unti": "nginx"})
    assert str(info.value) == (
        PREFIX + "unknown parameter 'unti' (known: unit, count, ratio, mode, force, hosts, token)"
    )


def test_unknown_parameter_on_a_template_without_params() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(shell(), {"x": "1"})
    assert str(info.value) == "template 't': unknown parameter 'x' (known: none)"


def test_list_items_must_match_the_pattern() -> None:
    t = shell({"hosts": {"type": "list", "pattern": "[a-z]+"}})
    assert validate_params(t, {"hosts": "a,b"}) == {"hosts": ["a", "b"]}
    with pytest.raises(InvalidParams) as info:
        validate_params(t, {"hosts": "a,B1"})
    assert str(info.value) == "template 't': parameter 'hosts' does not match [a-z]+"


def test_pattern_is_a_full_match() -> None:
    t = shell({"v": {"type": "string", "pattern": "[0-9]+"}})
    assert validate_params(t, {"v": "42"}) == {"v": "42"}
    with pytest.raises(InvalidParams):
        validate_params(t, {"v": "42; rm -rf /"})


@pytest.mark.parametrize("value", ["a\x00b", '["ok", "a\\u0000b"]', ["ok", "a\x00"]])
def test_nul_bytes_are_refused(value: Any) -> None:
    t = shell({"v": {"type": "list"}, "s": {"type": "string"}})
    given = {"v": value} if not isinstance(value, str) or value.startswith("[") else {"s": value}
    name = next(iter(given))
    with pytest.raises(InvalidParams) as info:
        validate_params(t, given)
    assert str(info.value) == f"template 't': parameter '{name}' contains a NUL byte"


def test_one_megabyte_value_is_refused_without_echo() -> None:
    big = "a" * (1024 * 1024)
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unit": big})
    assert str(info.value) == PREFIX + "parameter 'unit' is too large (1048576 bytes, max 65536)"


def test_size_limit_counts_utf8_bytes_and_joined_lists() -> None:
    t = shell({"s": {"type": "string"}, "l": {"type": "list"}})
    assert validate_params(t, {"s": "a" * MAX_PARAM_BYTES})["s"] == "a" * MAX_PARAM_BYTES
    with pytest.raises(InvalidParams, match=r"'s' is too large \(65538 bytes"):
        validate_params(t, {"s": "é" * (MAX_PARAM_BYTES // 2 + 1)})
    items = ["x" * 1000] * 66  # each fine, joined 66065 bytes
    with pytest.raises(InvalidParams) as info:
        validate_params(t, {"l": items})
    assert str(info.value) == "template 't': parameter 'l' is too large (66065 bytes, max 65536)"


def test_lone_surrogates_are_not_valid_utf8() -> None:
    value = b"caf\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unit": value})
    assert str(info.value) == PREFIX + "parameter 'unit' is not valid UTF-8"


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unit": "u", "count": "9" * 30 + "x" * 100})
    message = str(info.value)
    assert message.endswith("got '" + "9" * 30 + "x" * 10 + "…'")
    assert "x" * 11 not in message


def test_control_characters_do_not_break_the_one_line_message() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(full(), {"unit": "u", "count": "1\n2"})
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("got '1\\n2'")


SECRET = "hunter2-SECRET"


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ({"type": "integer", "secret": True}, SECRET, "parameter 'pin' must be an integer"),
        ({"type": "number", "secret": True}, SECRET, "parameter 'pin' must be a number"),
        ({"type": "boolean", "secret": True}, SECRET, "parameter 'pin' must be a boolean"),
        ({"type": "choice", "choices": ["a"], "secret": True}, SECRET, "must be one of: a"),
        ({"type": "string", "pattern": "[0-9]+", "secret": True}, SECRET, "does not match"),
        ({"type": "string", "secret": True}, SECRET * 5000, "is too large"),
        ({"type": "string", "secret": True}, SECRET + "\x00", "contains a NUL byte"),
    ],
)
def test_secret_values_never_appear_in_messages(
    spec: dict[str, Any], value: str, message: str
) -> None:
    t = shell({"pin": spec})
    assert t.secret_names() == frozenset({"pin"})
    with pytest.raises(InvalidParams) as info:
        validate_params(t, {"pin": value})
    assert message in str(info.value)
    assert "hunter" not in str(info.value)
    assert "got" not in str(info.value)


def test_secret_default_errors_do_not_echo_either() -> None:
    msg = schema_error(
        {
            "name": "a",
            "command": ["x"],
            "params": {"pin": {"type": "integer", "secret": True, "default": SECRET}},
        }
    )
    assert msg == "params.pin.default must be an integer"


# --- rendering ----------------------------------------------------------------------------


def test_render_values_by_type() -> None:
    values = {"s": "x", "t": True, "f": False, "n": None, "l": ["a", "b"], "i": 3, "r": 2.0}
    values["h"] = 0.5
    assert render("{{s}}|{{ t }}|{{  f  }}|{{ n }}|{{ l }}|{{ i }}|{{ r }}|{{ h }}", values) == (
        "x|true|false||a,b|3|2|0.5"
    )


def test_render_never_rescans_user_values() -> None:
    values = {"a": "{{ b }}", "b": "boom"}
    assert render("{{ a }}-{{ b }}", values) == "{{ b }}-boom"
    assert render_argv(["{{ a }}", "x{{ a }}"], values) == ["{{ b }}", "x{{ b }}"]


def test_render_unknown_placeholder() -> None:
    with pytest.raises(InvalidParams) as info:
        render("hello {{nope}}", {"x": 1})
    assert str(info.value) == "unknown placeholder '{{ nope }}'"
    with pytest.raises(InvalidParams, match="unknown placeholder"):
        render_argv(["{{ nope }}"], {})


@pytest.mark.parametrize("hostile", ["; touch X", "$(touch X)", "--help", "a b\tc", "`id`", "*"])
def test_hostile_values_stay_one_verbatim_argv_item(hostile: str) -> None:
    t = shell({"msg": {"type": "string"}}, command=["echo", "{{ msg }}", "--x={{ msg }}"])
    values = validate_params(t, {"msg": hostile})
    assert render_argv(t.command or (), values) == ["echo", hostile, f"--x={hostile}"]


def test_list_placeholder_expands_and_none_is_dropped() -> None:
    t = shell(
        {"hosts": {"type": "list"}, "opt": {"type": "string"}, "n": {"type": "integer"}},
        command=["ping", "{{ opt }}", "{{ hosts }}", "--all={{ hosts }}", "{{ n }}"],
    )
    values = validate_params(t, {"hosts": "a,b c"})
    assert values == {"hosts": ["a", "b c"], "opt": None, "n": None}
    assert render_argv(t.command or (), values) == ["ping", "a", "b c", "--all=a,b c"]


def test_empty_list_expands_to_nothing_and_empty_string_is_kept() -> None:
    argv = render_argv(["cmd", "{{ l }}", "{{ s }}"], {"l": [], "s": ""})
    assert argv == ["cmd", ""]


def test_full_template_renders_end_to_end() -> None:
    t = full()
    values = validate_params(t, {"unit": "nginx", "token": "s3cret"})
    assert render_argv(t.command or (), values) == ["systemctl", "restart", "nginx"]
    assert {k: render(v, values) for k, v in t.env.items()} == {"API_TOKEN": "s3cret"}
    assert render(t.concurrency_key or "", values) == "svc-nginx"


# --- durations and priorities -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1h 30m", 5400.0),
        ("90", 90.0),
        ("0.5s", 0.5),
        ("1.5h", 5400.0),
        (45, 45.0),
        (2.5, 2.5),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "", "m", "-5", "1h-1m", "30m1h", "1h1h", "1e3", -1, True])
def test_parse_duration_refuses(bad: Any) -> None:
    with pytest.raises(InvalidParams) as info:
        parse_duration(bad)
    assert "use forms like 30s, 10m, 2h, 1d" in str(info.value)


def test_parse_duration_message() -> None:
    with pytest.raises(InvalidParams) as info:
        parse_duration("5x")
    assert str(info.value) == "invalid duration '5x': use forms like 30s, 10m, 2h, 1d"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (90, "1m30s"),
        (3600, "1h"),
        (0.5, "0.5s"),
        (0, "0s"),
        (86400, "1d"),
        (93784, "1d2h3m4s"),
        (90.25, "1m30.25s"),
        (59.9999, "1m"),
        (-90, "-1m30s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.5, 30, 90, 5400, 93784, 123.456])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "number"),
    [("low", 1), ("normal", 5), ("HIGH", 10), ("critical", 15), (0, 0), (100, 100), ("42", 42)],
)
def test_parse_priority(value: str | int, number: int) -> None:
    assert parse_priority(value) == number


@pytest.mark.parametrize("bad", ["urgent", "101", 101, -1, "-1", "", True, "5.5"])
def test_parse_priority_refuses(bad: Any) -> None:
    with pytest.raises(InvalidParams, match="invalid priority"):
        parse_priority(bad)


def test_priority_names() -> None:
    assert PRIORITIES == {"low": 1, "normal": 5, "high": 10, "critical": 15}
    assert [priority_name(n) for n in (1, 5, 10, 15, 7, 0)] == [
        "low",
        "normal",
        "high",
        "critical",
        "7",
        "0",
    ]


# --- loading files ------------------------------------------------------------------------


def test_problem_text() -> None:
    assert (
        str(CatalogProblem("data/templates/x.yaml", 12, "boom")) == "data/templates/x.yaml:12: boom"
    )
    assert (
        str(CatalogProblem("data/templates/x.yaml", None, "boom")) == "data/templates/x.yaml: boom"
    )


def test_load_sorted_names_and_both_extensions(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", simple("bravo"))
    write(tmp_path, "a.yml", simple("alpha"))
    write(tmp_path, ".#a.yaml", "not: [valid")  # editor lock file
    write(tmp_path, "notes.txt", "ignored")
    catalog = Catalog.load(tmp_path)
    assert catalog.problems == []
    assert catalog.names() == ["alpha", "bravo"]
    assert catalog.root == tmp_path
    assert catalog.get("alpha").source == str(tmp_path / "templates" / "a.yml")


def test_a_missing_catalog_directory_says_how_to_fix_it(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    catalog = Catalog.load(root)
    assert catalog.templates == {}
    assert catalog.error is not None and catalog.problems == [catalog.error]
    assert str(catalog.error) == (
        f"{root}: catalog directory {root} does not exist: create it with templates/ inside, "
        "or set OPSCONSOLE_CATALOG / --catalog to the catalog you mean"
    )
    with pytest.raises(NotFound) as info:
        catalog.get("hello")
    assert str(info.value) == f"template 'hello' not found: {catalog.error.message}"


def test_a_flat_folder_of_templates_says_to_move_them_into_templates(tmp_path: Path) -> None:
    for name in ("alpha", "bravo"):
        (tmp_path / f"{name}.yaml").write_text(simple(name))
    (tmp_path / "notes.txt").write_text("not a template")
    catalog = Catalog.load(tmp_path)
    assert catalog.templates == {}
    assert catalog.error is not None
    assert catalog.error.message == (
        f"found 2 template file(s) in {tmp_path} but none in {tmp_path / 'templates'}/: "
        f"move the files into {tmp_path / 'templates'}/"
    )


def test_a_catalog_without_templates_or_files_says_to_create_templates(tmp_path: Path) -> None:
    catalog = Catalog.load(tmp_path)
    assert catalog.error is not None
    assert catalog.error.message == (
        f"catalog directory {tmp_path} has no templates/ directory: create "
        f"{tmp_path / 'templates'}/ and put template files (*.yaml) in it"
    )


def test_a_catalog_that_is_a_file_is_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "catalog.yaml"
    root.write_text(simple("alpha"))
    catalog = Catalog.load(root)
    assert catalog.error is not None
    assert "is not a directory" in catalog.error.message


def test_an_empty_template_directory_is_a_valid_empty_catalog(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    catalog = Catalog.load(tmp_path)
    assert (catalog.error, catalog.problems, len(catalog)) == (None, [], 0)
    assert catalog.directory == tmp_path / "templates"


def test_get_unknown_template_lists_known_names(tmp_path: Path) -> None:
    for name in ("alpha", "bravo", "charlie"):
        write(tmp_path, f"{name}.yaml", simple(name))
    catalog = Catalog.load(tmp_path)
    with pytest.raises(NotFound) as info:
        catalog.get("delta")
    assert str(info.value) == "unknown template 'delta' (known: alpha, bravo, charlie)"


def test_get_lists_at_most_ten_names_close_matches_first(tmp_path: Path) -> None:
    for i in range(15):
        write(tmp_path, f"t{i:02d}.yaml", simple(f"job-{i:02d}"))
    write(tmp_path, "z.yaml", simple("restart-service"))
    catalog = Catalog.load(tmp_path)
    with pytest.raises(NotFound) as info:
        catalog.get("restart-servce")
    message = str(info.value)
    assert message.startswith("unknown template 'restart-servce' (known: restart-service, job-00,")
    assert message.endswith(", … (6 more))")
    assert message.count("job-") == 9


def test_get_on_empty_catalog() -> None:
    with pytest.raises(NotFound, match="no templates are loaded"):
        Catalog({}, []).get("x")


def test_invalid_utf8_file_is_reported_and_others_load(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", simple("alpha"))
    bad = tmp_path / "templates" / "b.yaml"
    bad.write_bytes(b"name: bravo\ndescription: caf\xe9\nrunner: shell\n")
    write(tmp_path, "c.yaml", simple("charlie"))
    catalog = Catalog.load(tmp_path)
    assert catalog.names() == ["alpha", "charlie"]
    assert [str(p) for p in catalog.problems] == [
        f"{bad}:2: not valid UTF-8 (byte 0xe9 at offset 28)"
    ]


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "name: a\nrunner: shell\ncommand: [echo\ntags: [x]\n: y\n")
    write(tmp_path, "b.yaml", simple("bravo"))
    catalog = Catalog.load(tmp_path)
    assert catalog.names() == ["bravo"]
    (problem,) = catalog.problems
    assert problem.path == str(path)
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: ")


def test_unknown_top_level_key_has_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        name: a
        runner: shell
        command: [echo]
        retires: 3
        """,
    )
    (problem,) = Catalog.load(tmp_path).problems
    assert str(problem) == f"{path}:4: unknown key 'retires' (did you mean 'retries'?)"


def test_unknown_param_key_has_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        name: a
        command: [echo, "{{ n }}"]
        params:
          n:
            type: integer
            defualt: 3
        """,
    )
    (problem,) = Catalog.load(tmp_path).problems
    assert (
        str(problem)
        == f"{path}:6: unknown key 'params.n.defualt' (did you mean 'params.n.default'?)"
    )


def test_undeclared_placeholder_has_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        name: a
        command:
          - echo
          - "{{ unit }}"
        """,
    )
    (problem,) = Catalog.load(tmp_path).problems
    assert problem.path == str(path)
    assert problem.line == 4
    assert "placeholder '{{ unit }}' names no declared parameter (declared: none)" in str(problem)


def test_bad_default_has_its_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", FULL.replace("default: 1, min: 1", "default: 0, min: 1"))
    (problem,) = Catalog.load(tmp_path).problems
    assert (problem.line, problem.message) == (8, "params.count.default must be >= 1")


def test_missing_required_key_has_no_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "runner: shell\ncommand: [echo]\n")
    (problem,) = Catalog.load(tmp_path).problems
    assert (problem.line, problem.message) == (None, "missing required key 'name'")


def test_bad_name_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "runner: shell\nname: Restart Service\ncommand: [echo]\n")
    (problem,) = Catalog.load(tmp_path).problems
    assert problem.line == 2
    assert problem.message == "name must match ^[a-z0-9][a-z0-9_-]*$, got 'Restart Service'"


def test_a_name_declared_by_two_files_loads_neither(tmp_path: Path) -> None:
    real = write(tmp_path, "hello.yaml", simple("hello"))
    stray = write(tmp_path, "dup.yaml", "# copy\n" + simple("hello"))
    write(tmp_path, "other.yaml", simple("other"))
    catalog = Catalog.load(tmp_path)
    assert catalog.names() == ["other"]
    assert catalog.error is None
    assert [(p.path, p.line, p.template, p.others) for p in catalog.problems] == [
        (str(stray), 2, "hello", (str(real),)),
        (str(real), 1, "hello", (str(stray),)),
    ]
    assert catalog.problems[0].message == (
        f"template name 'hello' is also declared by {real}: neither file is loaded until "
        "one of them is renamed (its name: line) or removed"
    )
    why = (
        f"template 'hello' is declared by both {stray} and {real}, so neither is loaded: "
        "rename one of them (its name: line) or remove the stray file"
    )
    with pytest.raises(NotFound) as info:
        catalog.get("hello")
    assert str(info.value) == why
    assert catalog.ambiguity("hello") == why
    assert catalog.ambiguity("other") is None


def test_a_name_declared_by_three_files_names_them_all(tmp_path: Path) -> None:
    paths = [write(tmp_path, f"{n}.yaml", simple("same")) for n in ("a", "b", "c")]
    catalog = Catalog.load(tmp_path)
    assert catalog.names() == []
    assert [p.others for p in catalog.problems] == [
        (str(paths[1]), str(paths[2])),
        (str(paths[0]), str(paths[2])),
        (str(paths[0]), str(paths[1])),
    ]
    assert "all but one are renamed" in catalog.problems[0].message
    assert f"3 files ({', '.join(map(str, paths))}), so none is loaded" in str(
        catalog.ambiguity("same")
    )


def test_the_stamp_changes_when_a_template_file_is_added_or_edited(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", simple("alpha"))
    first = Catalog.stamp(tmp_path)
    assert Catalog.stamp(tmp_path) == first
    write(tmp_path, "b.yaml", simple("alpha"))
    second = Catalog.stamp(tmp_path)
    assert second != first
    path.write_text(simple("alpha") + "description: longer now\n")
    assert Catalog.stamp(tmp_path) != second


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: a\ncommand: [echo]\ntimeout: 5s\nretries: 1\ntimeout: 1h\n")
    (problem,) = Catalog.load(tmp_path).problems
    assert (problem.line, problem.message) == (5, "invalid YAML: found duplicate key 'timeout'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "template is empty: expected a mapping of keys"),
        ("- a\n- b\n", "template must be a mapping of keys, got a list"),
        ("name: a\ncommand: !!python/object/apply:os.system [echo]\n", "invalid YAML: could not"),
    ],
)
def test_not_a_template_mapping(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "a.yaml", text)
    (problem,) = Catalog.load(tmp_path).problems
    assert problem.message.startswith(message)


def test_loading_200_templates(tmp_path: Path) -> None:
    for i in range(200):
        write(tmp_path, f"t{i:03d}.yaml", FULL.replace("restart-service", f"job-{i:03d}"))
    catalog = Catalog.load(tmp_path)
    assert len(catalog.names()) == 200
    assert catalog.problems == []
