#!/usr/bin/env bash
# Sample job: "rotate" the given log files. Missing files are skipped and reported, and the
# run exits 3, which the template declares a partial success.
set -uo pipefail
missing=0
total=$#
n=0
for f in "$@"; do
  n=$((n + 1))
  echo "::progress $((n * 100 / total)) Rotating $f"
  if [ -e "$f" ]; then
    if [ "${OPSCONSOLE_DRY_RUN:-0}" = "1" ]; then
      echo "dry run: would rotate $f"
    else
      echo "rotated $f"
    fi
  else
    echo "missing: $f" >&2
    missing=$((missing + 1))
  fi
done
echo "::result {\"files\": $total, \"missing\": $missing}"
[ "$missing" -eq 0 ] || exit 3
