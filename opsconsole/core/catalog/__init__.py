"""The job template catalog: operator-written YAML templates, and the parameters they take.

Templates and submitted parameters are both validated in this package, once, so the engine
and the faces can trust what they get. Its public names are re-exported here: import them
from ``opsconsole.core.catalog``, not from the modules that define them.
"""

from __future__ import annotations

from opsconsole.core.catalog.ansible import AnsibleSpec
from opsconsole.core.catalog.durations import (
    PRIORITIES,
    format_duration,
    parse_duration,
    parse_priority,
    priority_name,
)
from opsconsole.core.catalog.errors import SchemaError
from opsconsole.core.catalog.loader import MAX_TEMPLATE_BYTES, Catalog, CatalogProblem
from opsconsole.core.catalog.params import (
    MAX_PARAM_BYTES,
    ParamSpec,
    ParamType,
    validate_params,
)
from opsconsole.core.catalog.paths import check_handler_files, program_path
from opsconsole.core.catalog.render import render, render_argv
from opsconsole.core.catalog.schema import (
    NAME_PATTERN,
    ON_INTERRUPT,
    RUNNERS,
    Template,
    template_from_dict,
)
from opsconsole.core.catalog.terraform import TerraformSpec

__all__ = [
    "MAX_PARAM_BYTES",
    "MAX_TEMPLATE_BYTES",
    "NAME_PATTERN",
    "ON_INTERRUPT",
    "PRIORITIES",
    "RUNNERS",
    "AnsibleSpec",
    "Catalog",
    "CatalogProblem",
    "ParamSpec",
    "ParamType",
    "SchemaError",
    "Template",
    "TerraformSpec",
    "check_handler_files",
    "format_duration",
    "parse_duration",
    "parse_priority",
    "priority_name",
    "program_path",
    "render",
    "render_argv",
    "template_from_dict",
    "validate_params",
]
