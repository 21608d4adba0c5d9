"""Runs work: the worker pool, run contexts, log sinks and runners. Never imports a face."""
