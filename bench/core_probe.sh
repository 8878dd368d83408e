# Sourced by bench/run.sh and bench/run-stores.sh: is the server core running at full speed?
#
# A VM's core can run at a fraction of its speed for minutes (other guests on the host) with no
# steal time and no foreign load in /proc/stat to show for it. probe_core times a fixed loop of
# integer arithmetic in awk (no process start-up inside the timing) pinned to $SERVER_CPU, in ms;
# probe_slow compares it with the fastest probe seen so far ($SLOW_PCT %, default 125); wait_fast
# waits, at most $SLOW_WAIT s (default 90), for the core to be at full speed again;
# slow_after_pass probes again after a pass, once its server and the machine are quiet.
# proc_ticks and core_busy_max (the busiest core's % over one second) serve both scripts. Three
# probes when sourced set the first baseline.
: "${SERVER_CPU:=0}" "${SLOW_PCT:=125}" "${SLOW_WAIT:=90}"
probe_best=""
last_probe=""
probe_core() {
    taskset -c "$SERVER_CPU" awk 'BEGIN {
        "date +%s%N" | getline t0; close("date +%s%N")
        s = 0; for (i = 0; i < 3000000; i++) s = (s + i * 7) % 1000003
        "date +%s%N" | getline t1; close("date +%s%N")
        printf "%.0f\n", (t1 - t0) / 1e6 }'
}
probe_slow() {  # sets last_probe (and probe_best); true when the core is slow
    last_probe="$(probe_core)"
    if [ -z "$probe_best" ] || [ "$last_probe" -lt "$probe_best" ]; then probe_best="$last_probe"; fi
    [ $((last_probe * 100)) -gt $((probe_best * SLOW_PCT)) ]
}
wait_fast() {  # false when the core is still slow after $SLOW_WAIT s
    local start=$SECONDS
    while probe_slow; do
        [ $((SECONDS - start)) -ge "$SLOW_WAIT" ] && return 1
        sleep 3
    done
}
proc_ticks() {  # pid -> utime + stime of all its threads, in clock ticks
    awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}
core_busy_max() {  # busiest core's % over one second
    local a b
    a="$(awk '/^cpu[0-9]/ {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
    sleep 1
    b="$(awk '/^cpu[0-9]/ {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)"
    paste <(echo "$a") <(echo "$b") |
        awk '{d = $4 - $2; p = (d > 0 ? 100 * ($3 - $1) / d : 0); if (p > m) m = p} END {printf "%.0f", m}'
}
slow_after_pass() {  # pid: true when the core is slow right after a pass
    # The core may have slowed down during the pass although it was fast before it. Probe once
    # the server is idle (at most 2 ticks in a second) and both cores are under $QUIET_PCT %
    # busy, each waited for at most 30 s: a server's own work after the pass (SQLite's
    # checkpoint and the kernel writing it back) would make the probe slow.
    local a b start=$SECONDS
    while [ $((SECONDS - start)) -lt 30 ]; do
        a="$(proc_ticks "$1")"
        sleep 1
        b="$(proc_ticks "$1")"
        [ $((b - a)) -le 2 ] && break
    done
    start=$SECONDS
    while [ "$(core_busy_max)" -gt "${QUIET_PCT:-15}" ] && [ $((SECONDS - start)) -lt 30 ]; do :; done
    probe_slow
}
for _ in 1 2 3; do probe_slow || true; done
