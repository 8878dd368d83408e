# Sourced by bench/run.sh and bench/run-stores.sh: is the server core running at full speed?
#
# A VM's core can run at a fraction of its speed for minutes (other guests on the host) with no
# steal time and no foreign load in /proc/stat to show for it. probe_core times a fixed loop of
# integer arithmetic in awk (no process start-up inside the timing) pinned to $SERVER_CPU, in ms;
# probe_slow compares it with the fastest probe seen so far ($SLOW_PCT %, default 125); wait_fast
# waits, at most $SLOW_WAIT s (default 90), for the core to be at full speed again. Three probes
# when sourced set the first baseline.
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
for _ in 1 2 3; do probe_slow || true; done
