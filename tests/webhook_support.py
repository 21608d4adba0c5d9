"""A real local HTTP receiver for webhook tests, and an independent signature check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRET_BYTES = b"a shared key known to both ends!!"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
SECRET_ENV = "OPS_HOOK_SECRET"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then ``default``), records it."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, req: Received) -> int:
        with self.lock:
            self.received.append(req)
            return self.script.pop(0) if self.script else self.default

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            code = receiver.answer(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ops"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def verify(received: Received, secret: str = SECRET) -> bool:
    """Standard Webhooks verification written from the spec, not from opsconsole's code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id = received.headers["webhook-id"]
    ts = received.headers["webhook-timestamp"]
    signed = msg_id.encode() + b"." + ts.encode() + b"." + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.partition(",")[2] for s in received.headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, g) for g in given)


def write_config(home: Path, url: str, **extra: str) -> None:
    """opsconsole.toml with one webhook ``ops-chat`` to ``url``."""
    events = extra.get("events", '["job.*", "approval.requested"]')
    templates = extra.get("templates", '["deploy-*"]')
    (home / "opsconsole.toml").write_text(
        "[[webhooks]]\n"
        'name = "ops-chat"\n'
        f'url = "{url}"\n'
        f"events = {events}\n"
        f"templates = {templates}\n"
        f'secret = "env:{SECRET_ENV}"\n'
    )
