#!/usr/bin/env bash
# Server throughput with each store, in one run (issue: sessions that survive, section 8):
# civicflow serve with the in-memory store, SQLite (durable: the WAL synced before each acknowledgement, in a temporary
# directory on disk) and Redis (a redis-server started here on a free loopback port with
# appendonly yes and appendfsync everysec, stopped at the end), and the minimal Beast server
# (bench/ceiling_server.cpp) as the ceiling for ratios measured in the same run.
#
#   bench/run-stores.sh [--runs 3] [--duration 10] [--connections "64 256"]
#                       [--stores "memory sqlite redis"] [--forms 100000] [--no-build] [--out DIR]
#
# Every civicflow server and the ceiling run under `taskset -c $SERVER_CPU` (0) with one I/O
# thread (SQLite's writer thread is in the same process, so on the same core); wrk runs under
# `taskset -c $LOAD_CPU` (1) with bench/mix.lua (10,000 citizens per pass, each at a different
# point of a nine-message conversation, fresh citizens in every pass). redis-server runs on
# $REDIS_CPU (default: the load generator's core, standing for a Redis on another machine; its
# CPU per message is reported, and so is the load core's saturation).
#
# Before the measured rounds each store gets a validation pass (wrk -c64 -d3s, VALIDATE=1:
# every reply's status, flow and state checked). Then --runs rounds, each measuring every system
# at every connection count, interleaved, so a burst of load from elsewhere hits them alike.
# A pass is disturbed when other processes used more than $FOREIGN_PCT % of the machine during
# it (from /proc/stat minus the server's, redis-server's and wrk's own CPU), the VM lost as much
# to steal, or the machine was not quiet before it (both cores under $QUIET_PCT % busy, waiting
# at most $QUIET_WAIT s), or the server core was slow before it (a fixed awk loop pinned to it
# took more than $SLOW_PCT % of the fastest time seen, after waiting at most $SLOW_WAIT s for it
# to recover: a VM's core can run at half speed for minutes with no steal time or foreign load
# to show for it) or right after it (it slowed down during the pass); a disturbed pass is repeated with fresh citizens, at most
# $MAX_ATTEMPTS attempts, the last one kept and marked. Results: DIR/results.tsv (one line per
# pass) and DIR/report.md (medians; ratios to the ceiling computed per round, then the median).
# BUILD_DIR and FLOWS choose other binaries and flows.
#
# Last, the in-memory store's bytes per idle session: civicflow_bench_store_memory
# (bench/store_memory.cpp) opens the birth-certificate form for --forms citizens through
# MessageService over MemoryStore in process, on $SERVER_CPU, --runs times (median); see that
# file for why in process. --forms 0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
duration=10
connections="64 256"
stores="memory sqlite redis"
forms=100000
do_build=1
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --stores) stores="$2"; shift 2 ;;
        --forms) forms="$2"; shift 2 ;;
        --no-build) do_build=0; shift ;;
        --out) out="$2"; shift 2 ;;
        *) echo "run-stores: unknown option $1" >&2; exit 2 ;;
    esac
done
: "${QUIET_PCT:=15}" "${QUIET_WAIT:=120}" "${FOREIGN_PCT:=5}" "${MAX_ATTEMPTS:=3}" "${SLOW_PCT:=125}" "${SLOW_WAIT:=90}"
: "${BUILD_DIR:=build/release}" "${FLOWS:=flows}"
: "${WRK_THREADS:=1}"   # one wrk thread on the load core (bench/run.sh says why)
: "${SERVER_CPU:=0}" "${LOAD_CPU:=1}" "${REDIS_CPU:=$LOAD_CPU}"
: "${DATA_DIR:=/var/tmp}"   # SQLite and Redis files: must be a real disk, not tmpfs

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
for tool in wrk taskset python3 curl; do
    command -v "$tool" >/dev/null || { echo "run-stores: $tool not installed" >&2; exit 2; }
done
if [[ " $stores " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
    echo "run-stores: redis-server not installed (or leave redis out of --stores)" >&2
    exit 2
fi
[ "$(nproc)" -ge 2 ] || { echo "run-stores: needs 2 cores (server on one, load on the other)" >&2; exit 2; }

if [ "$do_build" = 1 ]; then
    log "building (Release)"
    cmake --preset release >/dev/null
    cmake --build --preset release --target civicflow civicflow_bench_ceiling \
        civicflow_status_backend civicflow_bench_store_memory
fi
build="$(cd "$BUILD_DIR" && pwd)"
civicflow="$build/server/civicflow"
ceiling="$build/bench/civicflow_bench_ceiling"
backend="$build/examples/civicflow_status_backend"
store_memory="$build/bench/civicflow_bench_store_memory"
for bin in "$civicflow" "$ceiling" "$backend"; do
    [ -x "$bin" ] || { echo "run-stores: $bin not built" >&2; exit 2; }
done

out="${out:-$(mktemp -d /tmp/civicflow-stores.XXXXXX)}"
mkdir -p "$out"
results="$out/results.tsv"
printf 'system\tconnections\tround\trps\tp50_us\tp99_us\tp999_us\tmax_us\tcpu_us_per_req\tredis_us_per_req\tload_core_pct\tforeign_pct\tsteal_pct\tattempts\tdisturbed\textra\n' > "$results"
tmp="$(mktemp -d)"
data="$(mktemp -d "$DATA_DIR/civicflow-stores.XXXXXX")"
fstype="$(stat -f -c %T "$data")"
pids=()
redis_pid=""
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp" "$data"
}
trap cleanup EXIT
[ "$fstype" = tmpfs ] && log "warning: $data is on tmpfs: SQLite's fsync and Redis's AOF cost nothing there"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- machine and versions ----
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r); os: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "compiler: $(c++ --version | head -1)"
    echo "sqlite: $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)' 2>/dev/null || echo '?') (python's; the server links the system libsqlite3)"
    command -v redis-server >/dev/null && echo "redis: $(redis-server --version | awk '{print $3}')"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "civicflow: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- engine server 2>/dev/null || echo ' + uncommitted changes in engine/ or server/')"
    echo "binaries: $build; flows: $FLOWS"
    echo "data directory: $data ($fstype)"
    echo "pinning: servers on cpu $SERVER_CPU, wrk on cpu $LOAD_CPU, redis-server on cpu $REDIS_CPU"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command: QUIET_PCT=$QUIET_PCT FOREIGN_PCT=$FOREIGN_PCT SLOW_PCT=$SLOW_PCT SLOW_WAIT=$SLOW_WAIT MAX_ATTEMPTS=$MAX_ATTEMPTS WRK_THREADS=$WRK_THREADS bench/run-stores.sh --runs $runs --duration $duration --connections \"$connections\" --stores \"$stores\" --forms $forms"
} > "$out/machine.txt"
cat "$out/machine.txt" >&2

# ---- CPU accounting (clock ticks) ----
# busy: user + nice + system. Interrupt and softirq time is left out (as in bench/run.sh): it is
# mostly the pass's own loopback traffic and, with SQLite, its own disk syncs, which /proc/stat
# does not charge to any process, so counting it made every SQLite pass look disturbed.
stat_totals() {  # -> busy steal total (all cores)
    awk '/^cpu / {print $2 + $3 + $4, $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
core_ticks() {  # cpu -> busy total
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
# The server core's speed before each pass (see bench/core_probe.sh).
source bench/core_probe.sh

quiet_note=""
wait_quiet() {
    local start=$SECONDS busy
    while :; do
        busy="$(core_busy_max)"
        [ "$busy" -le "$QUIET_PCT" ] && { quiet_note=""; return 0; }
        if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
            log "machine not quiet after ${QUIET_WAIT}s (busiest core ${busy}%), measuring anyway"
            quiet_note="not-quiet:${busy}%"
            return 0
        fi
    done
}

# measure NAME SERVER_PID CMD...: runs CMD on the load core (stdout to $tmp/pass.out) and
# accounts for the CPU of the server, redis-server and the load generator; repeats a disturbed
# pass. "@A" in CMD becomes the attempt number (a repeat starts fresh conversations).
measure() {
    local name="$1" spid="$2"
    shift 2
    local -a cmd=("$@") run
    local attempt b0 s0 t0 b1 s1 t1 c0 c1 r0 r1 l0 l1 lt0 lt1 gen
    for attempt in $(seq "$MAX_ATTEMPTS"); do
        run=("${cmd[@]//@A/$attempt}")
        wait_quiet
        if ! wait_fast; then
            quiet_note="slow-core:${last_probe}ms/${probe_best}ms"
            log "$name: server core still slow after ${SLOW_WAIT}s (probe ${last_probe} ms, best ${probe_best} ms), measuring anyway"
        fi
        read -r b0 s0 t0 < <(stat_totals)
        read -r l0 lt0 < <(core_ticks "$LOAD_CPU")
        c0="$(proc_ticks "$spid")"
        r0=0
        [ -n "$redis_pid" ] && r0="$(proc_ticks "$redis_pid")"
        # The subshell's cutime + cstime once the command has been waited for: wrk's CPU.
        taskset -c "$LOAD_CPU" bash -c '"$@" > "'"$tmp"'/pass.out"; awk "{sub(/.*\\) /, \"\"); print \$14 + \$15}" /proc/$$/stat' \
            _ "${run[@]}" > "$tmp/gen.cpu" || true
        c1="$(proc_ticks "$spid")"
        r1=0
        [ -n "$redis_pid" ] && r1="$(proc_ticks "$redis_pid")"
        read -r l1 lt1 < <(core_ticks "$LOAD_CPU")
        read -r b1 s1 t1 < <(stat_totals)
        gen="$(cat "$tmp/gen.cpu")"
        server_ticks=$((c1 - c0))
        redis_ticks=$((r1 - r0))
        load_core_pct="$(awk -v b="$((l1 - l0))" -v t="$((lt1 - lt0))" 'BEGIN {printf "%.0f", (t > 0 ? 100 * b / t : 0)}')"
        last_foreign="$(awk -v b="$((b1 - b0))" -v s="$server_ticks" -v r="$redis_ticks" -v g="$gen" -v t="$((t1 - t0))" \
            'BEGIN {f = 100 * (b - s - r - g) / t; printf "%.1f", (f < 0 ? 0 : f)}')"
        last_steal="$(awk -v s="$((s1 - s0))" -v t="$((t1 - t0))" 'BEGIN {printf "%.1f", 100 * s / t}')"
        pass_out="$(cat "$tmp/pass.out")"
        last_disturbed="$(awk -v f="$last_foreign" -v s="$last_steal" -v l="$FOREIGN_PCT" 'BEGIN {print ((f > l || s > l) ? "yes" : "no")}')"
        # A pass that ended on a slow core is repeated too (bench/core_probe.sh).
        if [ -z "$quiet_note" ] && slow_after_pass "$spid"; then
            quiet_note="slow-core-after:${last_probe}ms/${probe_best}ms"
        fi
        [ -n "$quiet_note" ] && last_disturbed="yes($quiet_note)"
        [ "$last_disturbed" = no ] && break
        log "$name disturbed (foreign ${last_foreign}%, steal ${last_steal}%), attempt $attempt"
    done
    attempts=$attempt
}

field() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

wait_listening() {  # file pid
    for _ in $(seq 300); do
        grep -q '^listening on' "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# ---- servers ----
backend_port="$(free_port)"
"$backend" --port "$backend_port" > "$tmp/backend.out" &
pids+=($!)
wait_listening "$tmp/backend.out" $! || { echo "run-stores: status backend did not start" >&2; exit 1; }

declare -A port pid url store_of
systems=()
for s in $stores; do
    case "$s" in
        memory) store_of[$s]="memory" ;;
        sqlite) store_of[$s]="sqlite:$data/sessions.db" ;;
        redis)
            rport="$(free_port)"
            mkdir -p "$data/redis"
            # AOF with an fsync every second: what docs/operations.md recommends. No RDB
            # snapshots (they would fork mid-pass).
            taskset -c "$REDIS_CPU" redis-server --bind 127.0.0.1 --port "$rport" \
                --dir "$data/redis" --appendonly yes --appendfsync everysec --save '' \
                --daemonize no --logfile "$tmp/redis.log" &
            redis_pid=$!
            pids+=("$redis_pid")
            for _ in $(seq 100); do
                redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break
                sleep 0.1
            done
            redis-cli -p "$rport" ping | grep -q PONG || { echo "run-stores: redis-server did not start" >&2; exit 1; }
            store_of[$s]="redis://127.0.0.1:$rport"
            ;;
        *) echo "run-stores: unknown store $s (memory, sqlite, redis)" >&2; exit 2 ;;
    esac
    p="$(free_port)"
    cat > "$tmp/civicflow-$s.yaml" <<YAML
version: 1
log: { level: warn, access: false }
limits: { max_connections: 10000 }
store: { type: "${store_of[$s]}", durable: true }
backends:
  status: { base_url: "http://127.0.0.1:$backend_port" }
  certificates: { base_url: "http://127.0.0.1:$backend_port" }
  grievances: { base_url: "http://127.0.0.1:$backend_port" }
YAML
    taskset -c "$SERVER_CPU" "$civicflow" serve --config "$tmp/civicflow-$s.yaml" --flows "$FLOWS" \
        --listen "127.0.0.1:$p" --threads 1 > "$tmp/civicflow-$s.out" 2> "$tmp/civicflow-$s.err" &
    pid[$s]=$!
    pids+=("${pid[$s]}")
    wait_listening "$tmp/civicflow-$s.out" "${pid[$s]}" ||
        { echo "run-stores: civicflow with store ${store_of[$s]} did not start:" >&2; head -5 "$tmp/civicflow-$s.err" >&2; exit 1; }
    curl -fsS "http://127.0.0.1:$p/readyz" >/dev/null ||
        { echo "run-stores: civicflow with store ${store_of[$s]} is not ready" >&2; exit 1; }
    port[$s]=$p
    url[$s]="http://127.0.0.1:$p/v1/messages"
    systems+=("$s")
done
p="$(free_port)"
taskset -c "$SERVER_CPU" "$ceiling" --port "$p" --threads 1 > "$tmp/ceiling.out" &
pid[ceiling]=$!
pids+=("${pid[ceiling]}")
wait_listening "$tmp/ceiling.out" "${pid[ceiling]}" || { echo "run-stores: ceiling did not start" >&2; exit 1; }
url[ceiling]="http://127.0.0.1:$p/"
systems+=(ceiling)

# ---- validation: every reply checked, each store ----
validation_fail=0
: > "$out/validation.txt"
for s in "${systems[@]}"; do
    [ "$s" = ceiling ] && continue
    measure "$s-validate" "${pid[$s]}" env THREADS="$WRK_THREADS" PREFIX="v@A" VALIDATE=1 \
        wrk -t"$WRK_THREADS" -c64 -d3s --timeout 10s -s bench/mix.lua "${url[$s]}"
    line="$(grep '^validation:' <<< "$pass_out" || true)"
    log "$s validation: ${line:-no output}"
    echo "$s: $line" >> "$out/validation.txt"
    grep -q ', 0 unexpected' <<< "$line" || validation_fail=1
done

# ---- throughput ----
for r in $(seq "$runs"); do
    for c in $connections; do
        for s in "${systems[@]}"; do
            extra_env=""
            [ "$s" = ceiling ] && extra_env="FIXED=1"
            measure "$s c$c round $r" "${pid[$s]}" env THREADS="$WRK_THREADS" PREFIX="t$r-c$c-@A" $extra_env \
                wrk -t"$WRK_THREADS" -c"$c" -d"${duration}s" --timeout 10s -s bench/mix.lua "${url[$s]}"
            f="$(grep '^figures' <<< "$pass_out" || true)"
            n="$(field "$f" requests)"
            cpu="$(awk -v t="$server_ticks" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (n > 0 ? t * 1e6 / hz / n : 0)}')"
            rcpu=""
            [ "$s" = redis ] && rcpu="$(awk -v t="$redis_ticks" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (n > 0 ? t * 1e6 / hz / n : 0)}')"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$s" "$c" "$r" "$(field "$f" rps)" "$(field "$f" p50_us)" "$(field "$f" p99_us)" \
                "$(field "$f" p999_us)" "$(field "$f" max_us)" "$cpu" "$rcpu" "$load_core_pct" \
                "$last_foreign" "$last_steal" "$attempts" "$last_disturbed" \
                "non2xx=$(field "$f" non2xx),socket_errors=$(field "$f" socket_errors),core_probe_ms=$last_probe/$probe_best" >> "$results"
            log "$s c$c round $r: $(field "$f" rps) req/s, p50 $(field "$f" p50_us) us, p99 $(field "$f" p99_us) us, server ${cpu} us CPU/req${rcpu:+, redis ${rcpu} us/req}, load core ${load_core_pct}%, foreign ${last_foreign}%, non2xx $(field "$f" non2xx)"
        done
    done
done
cp "$tmp"/civicflow-*.err "$out/" 2>/dev/null || true

# ---- memory per idle session, in-memory store ----
: > "$out/memory.txt"
if [ "$forms" -gt 0 ]; then
    if [ -x "$store_memory" ]; then
        for r in $(seq "$runs"); do
            wait_quiet
            line="$(taskset -c "$SERVER_CPU" "$store_memory" --flows "$FLOWS" --forms "$forms" --prefix "m$r")" ||
                log "store memory run $r failed: $line"
            log "in-memory store, $forms open forms, run $r: $line"
            echo "$line" >> "$out/memory.txt"
        done
    else
        log "$store_memory not built: memory pass skipped"
    fi
fi

# ---- report ----
python3 - "$out" "$validation_fail" <<'PY'
import csv, statistics, sys
out, validation_fail = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{out}/results.tsv"), delimiter="\t"))
names = {"memory": "civicflow, in-memory store", "sqlite": "civicflow, SQLite (durable)",
         "redis": "civicflow, Redis (AOF everysec)", "ceiling": "ceiling (minimal Beast, fixed JSON)"}
goals = {"sqlite": 20000, "redis": 30000}
systems = [s for s in names if any(r["system"] == s for r in rows)]
conns = sorted({int(r["connections"]) for r in rows})
def vals(s, c, key):
    return [float(r[key]) for r in rows if r["system"] == s and r["connections"] == str(c) and r[key]]
def med(s, c, key):
    v = vals(s, c, key)
    return statistics.median(v) if v else None
def ratio(s, c):
    per = []
    for rnd in sorted({r["round"] for r in rows}):
        a = [float(r["rps"]) for r in rows if r["system"] == s and r["connections"] == str(c) and r["round"] == rnd and r["rps"]]
        b = [float(r["rps"]) for r in rows if r["system"] == "ceiling" and r["connections"] == str(c) and r["round"] == rnd and r["rps"]]
        if a and b and b[0]:
            per.append(a[0] / b[0])
    return per
def f(v, d=0):
    return "-" if v is None else f"{v:,.{d}f}"
L = [open(f"{out}/machine.txt").read().strip().replace("\n", "  \n"), ""]
L.append("| system | connections | req/s (median) | runs | p50 ms | p99 ms | server CPU us/req | redis-server CPU us/req | load core busy | / ceiling (per round) | goal |")
L.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|")
for s in systems:
    for c in conns:
        rps = med(s, c, "rps")
        if rps is None:
            continue
        runs = " / ".join(f"{v:,.0f}" for v in vals(s, c, "rps"))
        per = ratio(s, c) if s != "ceiling" else []
        rat = "-" if not per else f"{statistics.median(per):.2f} ({' / '.join(f'{p:.2f}' for p in per)})"
        g = goals.get(s)
        goal = "-" if g is None else (f">= {g:,}: " + ("met" if rps >= g else "**missed**"))
        p50, p99 = med(s, c, "p50_us"), med(s, c, "p99_us")
        rc = med(s, c, "redis_us_per_req") if s == "redis" else None
        L.append(f"| {names[s]} | {c} | {f(rps)} | {runs} | {f(p50 and p50 / 1000, 2)} | {f(p99 and p99 / 1000, 2)} | "
                 f"{f(med(s, c, 'cpu_us_per_req'), 1)} | {f(rc, 1)} | {f(med(s, c, 'load_core_pct'))}% | {rat} | {goal} |")
bad = [r for r in rows if r["extra"] and ("non2xx=0" not in r["extra"] or "socket_errors=0" not in r["extra"])]
dist = [r for r in rows if r["disturbed"] not in ("no", "")]
rep = [r for r in rows if r["attempts"] not in ("1", "")]
L.append("")
L.append(f"Passes repeated for other load: {len(rep)}; still disturbed after the last attempt (kept, marked in results.tsv): {len(dist)}"
         + "".join(f"\n- {r['system']} c{r['connections']} round {r['round']}: foreign {r['foreign_pct']}%, steal {r['steal_pct']}% {r['disturbed']}" for r in dist))
if bad:
    L.append("Passes with errors: " + "; ".join(f"{r['system']} c{r['connections']} round {r['round']}: {r['extra']}" for r in bad))
mem = [dict(kv.split("=", 1) for kv in l.split()) for l in open(f"{out}/memory.txt") if l.startswith("forms=")]
if mem:
    def mmed(k):
        return statistics.median(float(m[k]) for m in mem)
    L.append("")
    L.append(f"In-memory store, {mem[0]['forms']} citizens each waiting in the birth-certificate form (in process, median of {len(mem)}): "
             f"{mmed('bytes_per_form'):.0f} bytes per idle session (VmRSS growth / forms; runs: {' / '.join(m['bytes_per_form'] for m in mem)}), "
             f"{mmed('marginal_bytes_per_form'):.0f} for the second half alone, citizen ids of {mem[0]['user_bytes']} bytes, allocator {mem[0]['allocator']}; "
             f"encoded session {mem[0]['session_bytes']} bytes; goal < 300: " + ("met" if mmed('bytes_per_form') < 300 else "**missed**"))
L.append("")
L.append("Validation (wrk -c64 -d3s, every reply checked): " + "; ".join(l.strip() for l in open(f"{out}/validation.txt") if l.strip())
         + ("" if validation_fail == "0" else "  **VALIDATION FAILED**"))
open(f"{out}/report.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
log "results: $results, report: $out/report.md"
exit "$validation_fail"
