#!/usr/bin/env bash
# Sample deploy: pretends to roll out APP at VERSION to ENV. Never prints the token.
set -euo pipefail
app="$1" version="$2" env="$3"
[ -n "${DEPLOY_TOKEN:-}" ] || { echo "no DEPLOY_TOKEN" >&2; exit 2; }
mode="deploy"
[ "${OPSCONSOLE_DRY_RUN:-0}" = "1" ] && mode="dry run"
steps=("Fetching $app $version" "Running migrations" "Rolling out to $env" "Health check")
for i in "${!steps[@]}"; do
  echo "::progress $(( (i + 1) * 25 )) ${steps[$i]}"
  echo "$mode: ${steps[$i]}"
  sleep 0.5
done
echo "::result {\"app\": \"$app\", \"version\": \"$version\", \"env\": \"$env\"}"
