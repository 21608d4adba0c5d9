"""Ansible runner (being built: issue 10)."""

from __future__ import annotations

from opsconsole.engine.context import RunContext, RunResult
from opsconsole.engine.runners.base import RunSpec


class AnsibleRunner:
    def run(self, spec: RunSpec, ctx: RunContext) -> RunResult:
        return RunResult.failed("runner 'ansible' is not available yet", kind="setup")
