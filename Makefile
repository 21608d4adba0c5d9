# Developer shortcuts; the README's two commands stay the way in.
PYTHON ?= .venv/bin/python

.PHONY: test screenshots bench bench-quick bench-queue bench-tui bench-runners

test:  ## the whole suite, installing what it needs (the README's test command)
	bash scripts/test.sh

# SVGs of the real console on fixed sample data (screenshots/*.svg, shown in the README)
screenshots:
	$(PYTHON) scripts/screenshots.py

# every benchmark with the peers, one table (bench/results/summary.md): installs bench/.venv,
# redis-server and PostgreSQL if missing, starts and stops private ones (about an hour)
bench:
	bash bench/run.sh

# the same, each bench's --quick mode, one run: a smoke test of the whole harness
bench-quick:
	bash bench/run.sh --quick

# the queue alone against Huey, Procrastinate, Celery and the raw limits
bench-queue:
	bash bench/run.sh --only queue

# the console under load (100,000 jobs, 20 chatty jobs, a 500,000-line log): a few minutes
bench-tui:
	$(PYTHON) bench/tui_bench.py

# the Ansible and Terraform runners' overhead: a small playbook and a small apply, by hand
# and through opsconsole (a few minutes; needs the ansible and terraform extras)
bench-runners:
	$(PYTHON) bench/runners_bench.py
