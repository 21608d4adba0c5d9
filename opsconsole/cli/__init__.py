"""The Typer face: parse -> call one OpsService method -> hand the result to ``output``.

Modules here import nothing heavy at import time, so ``opsconsole --help`` stays fast.
"""
