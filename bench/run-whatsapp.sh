#!/usr/bin/env bash
# Benchmark: signed WhatsApp webhooks per second on one core, with every reply sent to a fake
# Graph API and checked to have been sent exactly once (issue 5, section 9).
#
#   cmake --preset release && cmake --build --preset release
#   bench/run-whatsapp.sh [BUILD_DIR] [DURATION] [RUNS]      # defaults: build/release 10s 3
#
# Builds nothing. In each of RUNS rounds, for each store (STORES, default "memory sqlite"), fresh:
#   1. civicflow_bench_wa_bodies writes MESSAGES signed webhook bodies (one message each, over
#      CITIZENS citizens, wamids never used before) and the replies they must get;
#   2. civicflow_bench_fake_graph (core 1) answers the Graph API and checks the sends;
#   3. civicflow serve --threads 1 (core 0), --store memory or sqlite:<temp dir>, the shipped
#      flows, the channel's environment pointing at the fake, send_rate 1000000/s,
#      recipient_interval 1ms, mark_read true;
#   4. wrk -t2 -c64 (core 1) with bench/whatsapp.lua for DURATION: webhooks/s as answered;
#   5. then waits until the server has run every turn and sent everything (GET /metrics:
#      civicflow_whatsapp_turns_total >= _inbound_total, _outbound_queued 0, every accepted
#      message marked read at the fake), and checks: the fake received exactly the bodies the
#      accepted messages must get (duplicates 0, missing 0, unexpected 0, no gaps; see
#      bench/fake_graph_server.cpp), as many as civicflow_whatsapp_sends_total{outcome="sent"},
#      no webhook refused or deduplicated, no wrk error.
# Each round starts with the baseline, bench/ceiling_server.cpp (a minimal Beast server answering
# a fixed body) under the same wrk on the same cores: what one HTTP exchange costs here. Prints
# one line per pass and the medians per store. Exit status 1 if any check failed.
#
# Figures per run:
#   webhooks_per_s   webhooks accepted (civicflow_whatsapp_inbound_total when wrk stopped; one
#                    message each) / (wrk's end - the first Graph API request, a few ms after the
#                    first webhook). Not wrk's own Requests/sec: wrk starts its first thread
#                    while the second still loads its bodies (seconds), then divides every
#                    thread's requests by the time since the last one started;
#   e2e_per_s        accepted messages / (last Graph API request - first one): the rate
#                    at which messages were fully handled, replies sent, backlog included;
#   backlog          accepted messages whose turn had not run when the load stopped;
#   cpu_us_per_msg   the server's user+system CPU time, from the start of the load until the
#                    outbox drained, / accepted messages (all its threads);
#   http_per_msg     HTTP exchanges per message: the webhook, the sends and the mark-read;
#   turns, mark_read_repeats  turns run (more than accepted: a message's turn ran twice; the
#                    message service then answers from the stored replies, so nothing is sent
#                    twice, but its mark-read is, and counted here);
#   graph_connections connections the server opened to the fake Graph API;
#   server_cpu_pct, graph_cpu_pct  CPU the server (core 0) and the fake (core 1) used under
#                    load (first Graph API request to wrk's end), in percent of one core;
#   load, foreign_pct the load average before the pass, and the share of both cores that other
#                    processes used while wrk ran (busy time minus the server's, the fake's and
#                    wrk's own).
#
# Environment: STORES, MESSAGES (bodies per run; default 30,000 per second of DURATION),
# CITIZENS (10000), CONNECTIONS (64), PORT (18093; the fake Graph API uses PORT+1),
# DRAIN_TIMEOUT (seconds, 300), KEEP=1 keeps the temp directory. Needs wrk, curl, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
duration="${2:-10s}"
runs="${3:-3}"
civicflow="$build/server/civicflow"
bodies_tool="$build/bench/civicflow_bench_wa_bodies"
graph="$build/bench/civicflow_bench_fake_graph"
ceiling="$build/bench/civicflow_bench_ceiling"  # the baseline, when built
for bin in "$civicflow" "$bodies_tool" "$graph"; do
    [ -x "$bin" ] || { echo "run-whatsapp: $bin not built (CIVICFLOW_BUILD_BENCH=ON)" >&2; exit 2; }
done
for tool in wrk curl taskset; do
    command -v "$tool" >/dev/null || { echo "run-whatsapp: $tool not installed" >&2; exit 2; }
done
seconds="${duration%s}"
stores="${STORES:-memory sqlite}"
messages="${MESSAGES:-$((30000 * seconds))}"
citizens="${CITIZENS:-10000}"
connections="${CONNECTIONS:-64}"
port="${PORT:-18093}"
graph_port=$((port + 1))
drain_timeout="${DRAIN_TIMEOUT:-300}"
secret="bench-app-secret-$RANDOM$RANDOM"

tmp="$(mktemp -d)"
pids=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "run-whatsapp: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

wait_listening() {  # file
    for _ in $(seq 300); do grep -q '^listening on' "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "run-whatsapp: $1: did not start" >&2
    cat "${1%.out}.err" >&2 2>/dev/null || true
    exit 1
}
metric() {  # metrics-text name -> value (0 when absent)
    awk -v n="$2" '$1 == n {v = $2} END {print v + 0}' <<< "$1"
}
json() {  # json-text key -> number
    sed -n "s/.*\"$2\":\([0-9-]*\).*/\1/p" <<< "$1"
}
cpu_ticks() {  # pid -> utime + stime
    awk '{print $14 + $15}' "/proc/$1/stat"
}
busy_ticks() {  # all CPUs: busy and total jiffies
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
}
# The share of the machine other processes used while wrk ran, in percent of both cores: the
# busy time of all CPUs minus the server's, the fake's and wrk's own.
foreign_pct() {  # busy-before total-before busy-after total-after own-ticks
    awk -v b0="$1" -v t0="$2" -v b1="$3" -v t1="$4" -v own="$5" \
        'BEGIN {f = (b1 - b0 - own) / (t1 - t0) * 100; printf "%.0f", (f > 0 ? f : 0)}'
}
median() {  # numbers... -> median
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

status=0
results="$tmp/results"
: > "$results"

run_pass() {  # store run
    local store=$1 run=$2
    local dir="$tmp/$store-$run"
    mkdir -p "$dir"
    local store_arg=memory
    [ "$store" = sqlite ] && store_arg="sqlite:$dir/civicflow.db"
    # Run tags keep wamids distinct across runs (and across invocations: the clock).
    local tag
    tag="$(printf '%s%s%X' "${store:0:1}" "$run" "$(date +%s)" | tr '[:lower:]' '[:upper:]')"

    taskset -c 1 "$bodies_tool" --secret "$secret" --out "$dir/bodies.txt" --expect \
        "$dir/expect.txt" --messages "$messages" --citizens "$citizens" --flows flows \
        --run "$tag" > "$dir/bodies.out"

    taskset -c 1 "$graph" --port "$graph_port" --expect "$dir/expect.txt" \
        > "$dir/graph.out" 2> "$dir/graph.err" &
    local graph_pid=$!
    pids+=("$graph_pid")
    cat > "$dir/civicflow.yaml" <<YAML
version: 1
log: { level: warn, access: false }
limits: { max_connections: 10000 }
whatsapp: { send_rate: 1000000, recipient_interval: 1ms, mark_read: true }
YAML
    CIVICFLOW_WA_APP_SECRET="$secret" CIVICFLOW_WA_VERIFY_TOKEN=bench-verify \
        CIVICFLOW_WA_ACCESS_TOKEN=bench-access-token \
        CIVICFLOW_WA_API_BASE="http://127.0.0.1:$graph_port/v23.0" \
        taskset -c 0 "$civicflow" serve --config "$dir/civicflow.yaml" --flows flows \
        --listen "127.0.0.1:$port" --threads 1 --store "$store_arg" \
        > "$dir/civicflow.out" 2> "$dir/civicflow.err" &
    local server_pid=$!
    pids+=("$server_pid")
    wait_listening "$dir/graph.out"
    wait_listening "$dir/civicflow.out"

    local load cpu_before cpu_after end_ms machine_before machine_after graph_before
    local server_load graph_load foreign
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    cpu_before=$(cpu_ticks "$server_pid")
    graph_before=$(cpu_ticks "$graph_pid")
    # wrk loads its bodies before its clock starts; the foreign-load window starts with it too,
    # so the loading counts as wrk's own time.
    machine_before="$(busy_ticks)"
    local TIMEFORMAT="%U %S"
    { time BODIES="$dir/bodies.txt" THREADS=2 taskset -c 1 wrk -t2 -c"$connections" \
        -d"$duration" --timeout 10s --latency -s bench/whatsapp.lua \
        "http://127.0.0.1:$port/webhooks/whatsapp" > "$dir/wrk.out"; } 2> "$dir/wrk.time"
    machine_after="$(busy_ticks)"
    end_ms=$(date +%s%3N)
    server_load=$(( $(cpu_ticks "$server_pid") - cpu_before ))
    graph_load=$(( $(cpu_ticks "$graph_pid") - graph_before ))

    local wrk_ticks
    wrk_ticks=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($1 + $2) * hz}' "$dir/wrk.time")
    # shellcheck disable=SC2086
    foreign=$(foreign_pct $machine_before $machine_after \
        $((server_load + graph_load + wrk_ticks)))
    local m
    m="$(curl -sf "http://127.0.0.1:$port/metrics")"
    local inbound_at_end
    inbound_at_end=$(metric "$m" civicflow_whatsapp_inbound_total)
    local backlog=$(( inbound_at_end - $(metric "$m" civicflow_whatsapp_turns_total) ))
    [ "$backlog" -ge 0 ] || backlog=0  # more turns than messages: re-runs, counted apart

    # Drain: every turn run, nothing queued, every accepted message marked read.
    local stats inbound turns queued drained=0
    local deadline=$(( $(date +%s) + drain_timeout ))
    while [ "$(date +%s)" -le "$deadline" ]; do
        m="$(curl -sf "http://127.0.0.1:$port/metrics")"
        stats="$(curl -sf "http://127.0.0.1:$graph_port/stats/counts")"
        inbound=$(metric "$m" civicflow_whatsapp_inbound_total)
        turns=$(metric "$m" civicflow_whatsapp_turns_total)
        queued=$(metric "$m" civicflow_whatsapp_outbound_queued)
        if [ "$turns" -ge "$inbound" ] && [ "$queued" = 0 ] &&
            [ "$(json "$stats" marked_messages)" -ge "$inbound" ]; then
            drained=1
            break
        fi
        sleep 0.2
    done
    cpu_after=$(cpu_ticks "$server_pid")
    # One more look, so that a late duplicate is seen too.
    sleep 1
    m="$(curl -sf "http://127.0.0.1:$port/metrics")"
    stats="$(curl -sf "http://127.0.0.1:$graph_port/stats")"
    kill "$server_pid" "$graph_pid" 2>/dev/null || true
    wait "$server_pid" "$graph_pid" 2>/dev/null || true

    local figures
    figures="$(grep '^figures' "$dir/wrk.out" || true)"
    local f_p50 f_p99 f_non2xx f_sockerr f_exhausted
    f_p50=$(sed -n 's/.* p50_us=\([0-9.]*\).*/\1/p' <<< "$figures")
    f_p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<< "$figures")
    f_non2xx=$(sed -n 's/.* non2xx=\([0-9]*\).*/\1/p' <<< "$figures")
    f_sockerr=$(sed -n 's/.* socket_errors=\([0-9]*\).*/\1/p' <<< "$figures")
    f_exhausted=$(sed -n 's/.* exhausted=\([0-9]*\).*/\1/p' <<< "$figures")
    inbound=$(metric "$m" civicflow_whatsapp_inbound_total)
    local sent_metric dup_metric bad_sig sends expected duplicates missing unexpected gaps
    sent_metric=$(awk '$1 == "civicflow_whatsapp_sends_total{outcome=\"sent\"}" {print $2}' <<< "$m")
    dup_metric=$(metric "$m" civicflow_whatsapp_duplicates_total)
    bad_sig=$(metric "$m" civicflow_whatsapp_bad_signatures_total)
    sends=$(json "$stats" sends)
    expected=$(json "$stats" expected_sends)
    duplicates=$(json "$stats" duplicates)
    missing=$(json "$stats" missing)
    unexpected=$(json "$stats" unexpected)
    gaps=$(json "$stats" gaps)
    local accepted first_ms last_ms e2e cpu_us hz exchanges
    hz=$(getconf CLK_TCK)
    accepted=$(json "$stats" accepted_messages)
    first_ms=$(json "$stats" first_ms)
    last_ms=$(json "$stats" last_ms)
    # From the first Graph API request (a mark-read, a few ms after the first webhook; wrk's
    # start-up, which loads the bodies, is not counted) to the last.
    e2e=$(awk -v n="$inbound" -v a="$first_ms" -v b="$last_ms" 'BEGIN {printf "%.0f", n / ((b - a) / 1000)}')
    # How busy the server's core and the fake were while the load ran (from the first Graph API
    # request to wrk's end; both idle before): near 100 for the server means it was the
    # bottleneck.
    local server_pct graph_pct
    server_pct=$(awk -v t="$server_load" -v hz="$hz" -v ms=$((end_ms - first_ms)) \
        'BEGIN {printf "%.0f", t / hz / (ms / 1000) * 100}')
    graph_pct=$(awk -v t="$graph_load" -v hz="$hz" -v ms=$((end_ms - first_ms)) \
        'BEGIN {printf "%.0f", t / hz / (ms / 1000) * 100}')
    # HTTP exchanges per message: the webhook, its sends and its mark-read.
    exchanges=$(awk -v n="$inbound" -v r="$(json "$stats" requests)" 'BEGIN {printf "%.2f", 1 + r / n}')
    cpu_us=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$hz" -v n="$inbound" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')

    local ok=1 why=""
    [ "$drained" = 1 ] || { ok=0; why+=" not-drained"; }
    [ "$sends" = "$expected" ] || { ok=0; why+=" sends!=expected"; }
    [ "$sends" = "$sent_metric" ] || { ok=0; why+=" sends!=server-sent"; }
    [ "$accepted" = "$inbound" ] || { ok=0; why+=" accepted!=inbound"; }
    if [ "$duplicates" != 0 ] || [ "$missing" != 0 ] || [ "$unexpected" != 0 ] ||
        [ "$gaps" != 0 ]; then
        ok=0
        why+=" not-exactly-once"
    fi
    if [ "$dup_metric" != 0 ] || [ "$bad_sig" != 0 ]; then
        ok=0
        why+=" webhooks-deduplicated-or-refused"
    fi
    if [ "$f_non2xx" != 0 ] || [ "$f_sockerr" != 0 ]; then
        ok=0
        why+=" wrk-errors"
    fi
    [ "$f_exhausted" = 0 ] || { ok=0; why+=" bodies-exhausted(raise MESSAGES)"; }
    [ "$ok" = 1 ] || status=1

    local line
    local webhooks_rate
    webhooks_rate=$(awk -v n="$inbound_at_end" -v a="$first_ms" -v b="$end_ms" \
        'BEGIN {printf "%.0f", n / ((b - a) / 1000)}')
    line="store=$store run=$run webhooks_per_s=$webhooks_rate e2e_per_s=$e2e accepted=$inbound"
    line+=" backlog=$backlog sends=$sends expected_sends=$expected server_sent=$sent_metric"
    line+=" duplicates=$duplicates missing=$missing unexpected=$unexpected gaps=$gaps"
    line+=" turns=$(metric "$m" civicflow_whatsapp_turns_total)"
    line+=" mark_read_repeats=$(json "$stats" mark_read_repeats)"
    line+=" p50_ms=$(awk -v v="$f_p50" 'BEGIN {printf "%.2f", v / 1000}')"
    line+=" p99_ms=$(awk -v v="$f_p99" 'BEGIN {printf "%.2f", v / 1000}')"
    line+=" cpu_us_per_msg=$cpu_us http_per_msg=$exchanges graph_connections=$(json "$stats" connections)"
    line+=" drain_s=$(awk -v a="$end_ms" -v b="$last_ms" 'BEGIN {d = (b - a) / 1000; printf "%.1f", (d > 0 ? d : 0)}')"
    line+=" server_cpu_pct=$server_pct graph_cpu_pct=$graph_pct"
    line+=" load=\"$load\" foreign_pct=$foreign ok=$ok${why:+ failed:$why}"
    echo "$line" | tee -a "$results"
}

ceiling_pass() {  # run: the baseline, bench/ceiling_server.cpp under the same wrk
    local run=$1
    local dir="$tmp/ceiling-$run"
    mkdir -p "$dir"
    taskset -c 0 "$ceiling" --port "$port" --threads 1 > "$dir/ceiling.out" &
    local pid=$!
    pids+=("$pid")
    wait_listening "$dir/ceiling.out"
    local load cpu_before cpu_after machine_before machine_after wrk_ticks foreign
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    cpu_before=$(cpu_ticks "$pid")
    machine_before="$(busy_ticks)"
    local TIMEFORMAT="%U %S"
    { time taskset -c 1 wrk -t2 -c"$connections" -d"$duration" -s bench/fixed.lua \
        "http://127.0.0.1:$port/" > "$dir/wrk.out"; } 2> "$dir/wrk.time"
    machine_after="$(busy_ticks)"
    cpu_after=$(cpu_ticks "$pid")
    wrk_ticks=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($1 + $2) * hz}' "$dir/wrk.time")
    # shellcheck disable=SC2086
    foreign=$(foreign_pct $machine_before $machine_after $((cpu_after - cpu_before + wrk_ticks)))
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local rps requests
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$dir/wrk.out")
    requests=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
    echo "store=ceiling run=$run requests_per_s=$rps cpu_us_per_req=$(awk -v t=$((cpu_after - cpu_before)) \
        -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') load=\"$load\" foreign_pct=$foreign" |
        tee -a "$results"
}

echo "== WhatsApp webhooks: civicflow serve --threads 1 on core 0; wrk -t2 -c$connections and the fake Graph API on core 1"
echo "== $runs runs of $duration per store ($stores), $messages bodies per run over $citizens citizens"
# Rounds: the baseline and each store in turn, so a burst of load from elsewhere hits them alike.
for run in $(seq "$runs"); do
    [ -x "$ceiling" ] && ceiling_pass "$run"
    for store in $stores; do
        run_pass "$store" "$run"
    done
done

field() {  # store key -> values
    grep "^store=$1 " "$results" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p"
}
echo "== medians of $runs runs"
for store in $stores; do
    line="store=$store"
    for key in webhooks_per_s e2e_per_s backlog p50_ms p99_ms cpu_us_per_msg server_cpu_pct foreign_pct; do
        # shellcheck disable=SC2046
        line+=" $key=$(median $(field "$store" "$key"))"
    done
    # shellcheck disable=SC2046
    line+=" http_per_msg=$(median $(field "$store" http_per_msg))"
    line+=" all_exactly_once=$(grep "^store=$store " "$results" | grep -c ' ok=1' || true)/$runs"
    echo "$line"
done
if [ -x "$ceiling" ]; then
    # shellcheck disable=SC2046
    echo "store=ceiling requests_per_s=$(median $(field ceiling requests_per_s)) cpu_us_per_req=$(median $(field ceiling cpu_us_per_req))"
fi
exit $status
