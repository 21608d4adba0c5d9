"""The one place that knows which values are secret: masking, redaction, encryption at rest.

Secret parameter values are Fernet-encrypted in the job row, decrypted only by the worker
that runs the job, and dropped when the job is final. Everything shown or logged passes
through a ``Redactor`` built from them. The key itself lives in a private file (or a
setting); a store records only its fingerprint, so a different key is refused, not used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opsconsole.config import default_home
from opsconsole.core.errors import InvalidParams
from opsconsole.core.files import PRIVATE, Access, fix, group_name, make_dir

MASK = "***"
MIN_REDACT_LEN = 3
"""Shorter values would blank out ordinary text; secrets that short protect nothing."""


def mask_params(params: Mapping[str, Any], secret_names: Iterable[str]) -> dict[str, Any]:
    names = set(secret_names)
    return {k: (MASK if k in names and v not in (None, "") else v) for k, v in params.items()}


def split_secrets(
    params: Mapping[str, Any], secret_names: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public params with secrets masked, the secret values alone)."""
    names = set(secret_names)
    secret = {k: v for k, v in params.items() if k in names and v not in (None, "")}
    return mask_params(params, names), secret


class Redactor:
    """Replaces every occurrence of the given secret values with ``***``.

    A multi-line value (a PEM or SSH key) is masked line by line too, since programs print
    it a line at a time; and each piece also in the escaped forms a program prints
    (Python ``repr``, JSON), where a newline is the two characters ``\\n``.
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        vals: set[str] = set()
        for v in values:
            if v is not None:
                vals |= printed_forms(str(v))
        # longest first so a secret containing another is masked whole
        self._values = sorted(vals, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        for v in self._values:
            if v in text:
                text = text.replace(v, MASK)
        return text

    def value(self, value: Any) -> Any:
        """Redact strings anywhere inside a JSON-like value."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value


def printed_forms(value: str) -> set[str]:
    """The texts a program may print for ``value``: itself, each of its lines, each escaped.

    Pieces shorter than ``MIN_REDACT_LEN`` (blank or short lines) are left out: masking
    them would blank ordinary output.
    """
    lines = value.splitlines()
    pieces = {value, *lines, *(line.strip() for line in lines)}
    out: set[str] = set()
    for piece in pieces:
        out.add(piece)
        out.add(repr(piece)[1:-1])
        out.add(json.dumps(piece)[1:-1])
        out.add(json.dumps(piece, ensure_ascii=False)[1:-1])
    return {f for f in out if len(f.strip()) >= MIN_REDACT_LEN}


KEY_FINGERPRINT = "secret_key_fingerprint"
"""The ``store_meta`` entry naming the key that seals a store's secrets (never the key)."""

RECOVER = (
    "restore that key file from a backup, or set OPSCONSOLE_SECRET_KEY to that key on every "
    "host; if the key is lost, `opsconsole db reset-key` records a new one and cancels the "
    "pending jobs whose secrets cannot be opened"
)


def fingerprint(key: bytes) -> str:
    """A short one-way name of a key: tells two keys apart and reveals nothing of either."""
    return "sha256:" + hashlib.sha256(key.strip()).hexdigest()[:16]


def key_path(home: Path) -> Path:
    return home / "secret.key"


def key_origin(home: Path, configured: str = "") -> str:
    """Where the key comes from, for messages."""
    return "the secret_key setting" if configured else f"key file {key_path(home)}"


def read_key(home: Path, configured: str = "", *, access: Access = PRIVATE) -> bytes | None:
    """The configured key, else the key file's; None when there is no key file.

    A key file that users other than its owner (and the shared group) can read is refused:
    anyone who read it can open every queued job's secrets.
    """
    if configured:
        key = configured.strip().encode()
        _check_key(key, "secret_key setting")
        return key
    path = key_path(home)
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            _check_private(path, st, access)
            key = fh.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidParams(f"cannot read the secret key file {path}: {exc.strerror}") from None
    _check_key(key, str(path))
    return key


def _check_private(path: Path, st: os.stat_result, access: Access) -> None:
    mode = stat.S_IMODE(st.st_mode)
    extra = mode & 0o044 & ~access.key_mode
    other_group = access.shared and mode & 0o040 and st.st_gid != access.gid
    if not extra and not other_group:
        return
    who = "every local user" if mode & 0o007 else f"group {group_name(st.st_gid)}"
    raise InvalidParams(
        f"the secret key file {path} is readable by {who} (mode {mode:04o}): "
        f"run `{fix(path, access, access.key_mode)}`"
    )


def load_key(home: Path, configured: str = "", *, access: Access = PRIVATE) -> bytes:
    """The Fernet key: from config, else the private key file in ``home`` (made on first use)."""
    key = read_key(home, configured, access=access)
    return key if key is not None else create_key(home, access=access)


def create_key(home: Path, *, access: Access = PRIVATE) -> bytes:
    """Write a new key file; the file appears complete or not at all (others may be reading).

    The home is made if missing (with its parents only for the default home).
    """
    if not home.is_dir():
        try:
            make_dir(home, access, parents=home == default_home())
        except FileNotFoundError:
            raise InvalidParams(
                f"cannot create the state directory {home}: {home.parent} does not exist"
            ) from None
    path = key_path(home)
    key = base64.urlsafe_b64encode(os.urandom(32))
    tmp = home / f".secret.key.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if access.gid is not None:
                os.fchown(fh.fileno(), -1, access.gid)
            os.fchmod(fh.fileno(), access.key_mode)
            fh.write(key + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and refuses to replace a key another process made
        except FileExistsError:  # another process won the race: use its key
            key = path.read_bytes().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _check_key(key: bytes, origin: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(key)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidParams(f"{origin}: not a valid Fernet key (32 url-safe base64 bytes)")


class SecretBox:
    """Encrypts a job's secret values into one token; the cipher is imported on first use."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet: Any = None

    def _f(self) -> Any:
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._key)
        return self._fernet

    def seal(self, values: Mapping[str, Any]) -> str | None:
        if not values:
            return None
        return self._f().encrypt(json.dumps(dict(values)).encode()).decode()

    def seal_bytes(self, data: bytes) -> bytes:
        """Encrypt a file's bytes (a saved Terraform plan) as one token, for the store."""
        return bytes(self._f().encrypt(data))

    def open_bytes(self, token: bytes) -> bytes:
        """The bytes ``seal_bytes`` sealed; ``InvalidParams`` when another key sealed them."""
        from cryptography.fernet import InvalidToken

        try:
            return bytes(self._f().decrypt(bytes(token)))
        except InvalidToken:
            raise InvalidParams(
                "cannot decrypt the saved plan: the secret key differs from the planner's"
            ) from None

    def derive(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from this one (HMAC-SHA256), never the key itself:
        what it keys (a digest of secret values) reveals nothing that opens the secrets."""
        import hashlib
        import hmac

        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def can_open(self, token: str) -> bool:
        """Whether this key opens ``token`` (sealed by the same key)."""
        from cryptography.fernet import InvalidToken

        try:
            self._f().decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def open(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self._f().decrypt(token.encode()))
        except InvalidToken:
            raise InvalidParams(
                "cannot decrypt this job's secrets: the secret key differs from the submitter's"
            ) from None
