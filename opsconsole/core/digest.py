"""The approval digest: the only place that says what an approval is bound to.

An approver approves exactly what will run: the template (its normalized content), the
non-secret parameters, a keyed hash of the secret values (never the values: the key is
derived from the store's secret key, so the digest cannot be used to guess them), the
targets when the job has any, and a Terraform job's saved plan (its sha256). Any change to
one of them changes the digest, and an approval of another digest does not open the gate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

DIGEST_PURPOSE = "opsconsole approval digest v1"
"""What the HMAC key is derived for (``SecretBox.derive``)."""


def canonical(value: Any) -> bytes:
    """One byte form for equal values: sorted keys, no spacing, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def template_hash(spec: Mapping[str, Any]) -> str:
    """The content hash of a template's normalized mapping (comments and layout ignored)."""
    return hashlib.sha256(canonical(dict(spec))).hexdigest()


def secret_hash(secrets: Mapping[str, Any], key: bytes) -> str:
    """A keyed hash of the secret values: equal values give equal hashes, nothing more."""
    return hmac.new(key, canonical(dict(secrets)), hashlib.sha256).hexdigest()


def job_digest(
    spec: Mapping[str, Any],
    params: Mapping[str, Any],
    secrets: Mapping[str, Any],
    key: bytes,
    *,
    targets: Any = None,
    plan: str | None = None,
) -> str:
    """The sha256 of everything an approval is bound to (64 hex characters); ``plan`` is the
    hash of a Terraform job's saved plan, so approving one plan never applies another."""
    parts = {
        "template": template_hash(spec),
        "params": {k: v for k, v in params.items() if k not in secrets},
        "secrets": secret_hash(secrets, key),
        "targets": targets,
    }
    if plan is not None:
        parts["plan"] = plan
    return hashlib.sha256(canonical(parts)).hexdigest()
