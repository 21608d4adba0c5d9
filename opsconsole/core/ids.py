"""Short, typeable job ids (``j7k2m9``): no vowels that spell words, no 0/o or 1/l."""

from __future__ import annotations

import secrets

ALPHABET = "23456789bcdfghjkmnpqrstvwxz"
LENGTH = 6
_SPACE = len(ALPHABET) ** LENGTH


def new_job_id() -> str:
    """A uniformly random id: one draw from the whole id space, spelled in base 27."""
    n = secrets.randbelow(_SPACE)
    out = []
    for _ in range(LENGTH):
        n, digit = divmod(n, len(ALPHABET))
        out.append(ALPHABET[digit])
    return "".join(out)
