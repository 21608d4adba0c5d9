"""Short, typeable job ids (``j7k2m9``): no vowels that spell words, no 0/o or 1/l."""

from __future__ import annotations

import secrets

ALPHABET = "23456789bcdfghjkmnpqrstvwxz"
LENGTH = 6


def new_job_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
