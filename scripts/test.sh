#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, then runs the whole suite on
# both stores.
# System packages: tmux (the console's end-to-end test drives the real app in it) and
# openssh-server (the Ansible SSH tests start a real sshd on 127.0.0.1), postgresql (the
# store's PostgreSQL tests start a private cluster of their own on a Unix socket).
# Python: a virtualenv in .venv with the project and its test extras.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v tmux >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq tmux >/dev/null || exit 1
fi
if [ ! -x /usr/sbin/sshd ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq openssh-server >/dev/null || exit 1
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq postgresql >/dev/null || exit 1
fi
python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' || exit 1
# The whole suite on SQLite (with the PostgreSQL-only tests), then every test that uses a
# store again on PostgreSQL. Both runs must pass; a run that collects nothing fails.
status=0
for store in sqlite postgresql; do
  echo "== tests on the $store store ==" >&2
  .venv/bin/python -m pytest --store="$store" "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests on the $store store: failing the run" >&2
    rc=1
  fi
  [ "$rc" -eq 0 ] || status=$rc
done
exit "$status"
