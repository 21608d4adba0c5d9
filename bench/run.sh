#!/usr/bin/env bash
# The one command of the benchmarks (make bench): on a fresh clone it installs what it needs,
# starts a private PostgreSQL cluster and a private Redis, runs every bench/*_bench.py, and
# combines their results (bench/report.py) into one table, bench/results/summary.json and
# bench/results/summary.md (the README's performance table).
#
#   bash bench/run.sh                 every bench, medians of 3 runs (about an hour)
#   bash bench/run.sh --quick         a smoke run: each bench's --quick, one run
#   bash bench/run.sh --repeat 5      more runs per measurement
#   bash bench/run.sh --only queue    the benches whose name contains a word (queue, cli, ...)
#   bash bench/run.sh --profile       also profile opsconsole's queue run first (py-spy on the
#                                     worker, pyinstrument on the submitter): bench/results/profiles
#
# What it starts it stops, on success, failure or Ctrl-C. Needs root or sudo the first time
# (apt-get install of redis-server and PostgreSQL when they are missing).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/bench/.venv"
PY="$VENV/bin/python"
RESULTS="$REPO/bench/results"

QUICK=""
PROFILE=""
REPEAT=3
ONLY=()
while (($#)); do
    case "$1" in
        --quick) QUICK=1 ;;
        --profile) PROFILE=1 ;;
        --repeat) REPEAT="${2:?--repeat needs a number}"; shift ;;
        --only) ONLY+=("${2:?--only needs a name}"); shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: --repeat must be a positive number" >&2; exit 2; }

say() { printf '\n== %s\n' "$*" >&2; }

# -- system packages ------------------------------------------------------------------------
pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        [[ -x "$d/initdb" ]] && { echo "$d"; return; }
    done
    command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
[[ -n "$(pg_bindir)" ]] || need+=(postgresql)
if ((${#need[@]})); then
    say "installing ${need[*]} (apt-get)"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "bench/run.sh: ${need[*]} missing and no root or sudo to install them" >&2; exit 1; }
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PGBIN="$(pg_bindir)"

# -- the bench's own virtualenv: the project with every extra, and the peers ---------------------
STAMP="$VENV/.installed"
WANT="$(cat pyproject.toml bench/requirements.txt | sha256sum | cut -c1-16)"
if [[ ! -x "$PY" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    say "installing bench/.venv (the project with its extras, and bench/requirements.txt)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]' -r bench/requirements.txt
    echo "$WANT" >"$STAMP"
fi

# -- private services, stopped on any exit ----------------------------------------------------
WORK="$(mktemp -d /tmp/opsconsole-bench.XXXXXX)"
PG_OWNER=""
[[ $(id -u) -eq 0 ]] && PG_OWNER=postgres
as_owner() { if [[ -n "$PG_OWNER" ]]; then runuser -u "$PG_OWNER" -- "$@"; else "$@"; fi; }
REDIS_PID=""
PG_STARTED=""
cleanup() {
    trap - EXIT INT TERM
    if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    if [[ -n "$PG_STARTED" ]]; then
        as_owner "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "bench/run.sh: interrupted" >&2; exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "starting a private PostgreSQL ($PGBIN) and Redis in $WORK"
mkdir -p "$WORK/pg"
[[ -n "$PG_OWNER" ]] && chown "$PG_OWNER" "$WORK/pg" && chmod 755 "$WORK"
PGPORT="$(free_port)"
as_owner "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -E UTF8 --no-sync >/dev/null
# defaults otherwise (fsync on): the queues on PostgreSQL pay for durable commits, as in use
as_owner "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-k $WORK/pg -c listen_addresses='' -p $PGPORT -c max_connections=200" start >/dev/null
PG_STARTED=1
PGUSER="${PG_OWNER:-$(id -un)}"
export BENCH_PG="host=$WORK/pg port=$PGPORT user=$PGUSER dbname=postgres"
export BENCH_PG_PID="$(head -1 "$WORK/pg/data/postmaster.pid")"

REDISPORT="$(free_port)"
redis-server --port "$REDISPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
export BENCH_REDIS="redis://127.0.0.1:$REDISPORT/0"
export BENCH_REDIS_PID="$REDIS_PID"
for _ in $(seq 100); do
    "$PY" -c "import redis,sys; redis.Redis.from_url('$BENCH_REDIS').ping()" 2>/dev/null && break
    sleep 0.1
done

# -- every bench -------------------------------------------------------------------------------
mkdir -p "$RESULTS"
START="$(date +%s)"
failed=()
for script in bench/queue_bench.py $(ls bench/*_bench.py | grep -v '^bench/queue_bench.py$'); do
    name="$(basename "$script" _bench.py)"
    if ((${#ONLY[@]})); then
        hit=""
        for o in "${ONLY[@]}"; do [[ "$name" == *"$o"* ]] && hit=1; done
        [[ -n "$hit" ]] || continue
    fi
    help="$("$PY" "$script" --help 2>&1 || true)"
    args=()
    [[ -n "$QUICK" && "$help" == *--quick* ]] && args+=(--quick)
    [[ -z "$QUICK" && "$help" == *--repeat* ]] && args+=(--repeat "$REPEAT")
    [[ -n "$PROFILE" && "$name" == queue ]] && args+=(--profile "$RESULTS/profiles")
    say "$script ${args[*]:-}"
    if ! "$PY" "$script" "${args[@]}" 2>&1 | tee "$RESULTS/$name.log"; then
        failed+=("$name")
    fi
done

say "summary"
"$PY" bench/report.py --since "$START"
if ((${#failed[@]})); then
    echo "bench/run.sh: these benches failed: ${failed[*]} (their logs: bench/results/NAME.log)" >&2
    exit 1
fi
