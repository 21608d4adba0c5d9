#!/usr/bin/env bash
# Sample job: report disk usage step by step, with progress and a result for opsconsole.
set -euo pipefail
path="${1:-/}"
top="${2:-5}"
echo "::progress 10 Checking filesystems"
df -h "$path"
echo "::progress 40 Measuring the largest directories under $path"
du -xh --max-depth=1 "$path" 2>/dev/null | sort -rh | head -n "$top" || true
echo "::progress 80 Summarising"
used=$(df --output=pcent "$path" | tail -n 1 | tr -dc '0-9')
echo "::progress 100 Done"
echo "::result {\"path\": \"$path\", \"used_percent\": $used}"
