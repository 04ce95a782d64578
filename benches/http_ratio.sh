#!/usr/bin/env bash
# The HTTP goal of issue 13 in one command: `POST /v2/activities` against
# `GET /healthz` on the same server (BENCHMARKS.md, section 12).
#
# Starts `warden serve` (release build, redb, development mode, RUST_LOG=warn)
# on a fresh data directory, creates the load generator's seed policies, then
# runs PAIRS pairs of `loadgen --healthz` and `loadgen` (the default mix,
# 10,000 wallets), CONCURRENCY connections, DURATION seconds each, and prints
# one line per pair:
#
#   http pair=<n> healthz_per_s=<n> activities_per_s=<n> ratio=<x>
#        server_us_healthz=<n> server_us_activity=<n>
#        steal_pct_healthz=<x> steal_pct_activity=<x>
#
# and then the mean rates over all pairs (`http all`) and over the quiet
# pairs, whose two runs both lost under QUIET percent to steal (`http quiet`)
#
# (server_us: the server's CPU, user and system, per answered request, from
# /proc; steal_pct: the share of the machine's CPU time its hypervisor took
# away during the run, from /proc/stat). Each run starts once the server is
# idle. The load generator shares the machine's cores with the server.
#
# On a shared VM the steal varies from second to second (0 to 58% in one
# minute here), and a run it hits answers fewer requests and spends more CPU
# on each: only a pair whose two runs both had little steal measures Warden.
#
# Needs curl (to see the server up).
#
# Usage: benches/http_ratio.sh   (env: PAIRS=3 CONCURRENCY=64 DURATION=6 PORT=18180,
#        QUIET=5, WARDEN_BIN=<another build of warden>)
set -euo pipefail

PAIRS=${PAIRS:-3}
CONCURRENCY=${CONCURRENCY:-64}
DURATION=${DURATION:-6}
PORT=${PORT:-18180}
# shellcheck source=benches/serve.sh
source "$(dirname "$0")/serve.sh"
serve_for_bench http-ratio "$PORT"
"$LOADGEN" --url "$URL" --token "$TOKEN" --seed-policies --requests 10 --concurrency 1 >/dev/null

# CPU ticks (user + system) of the server so far.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
TICKS_PER_S=$(getconf CLK_TCK)

# The machine's CPU ticks so far: "<all> <stolen>" (/proc/stat's first line;
# steal is its eighth figure).
# (printf "%.0f": mawk prints integers over 2^31 in exponent form.)
machine_ticks() { awk 'NR == 1 { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%.0f %.0f\n", t, $9; exit }' /proc/stat; }

# Waits (up to 20 s) until the server spends no CPU for half a second: what
# one run left behind (checkpoints, sweeps) is not counted in the next.
wait_idle() {
    local last now
    last=$(server_ticks)
    for _ in $(seq 40); do
        sleep 0.5
        now=$(server_ticks)
        [ "$now" = "$last" ] && return
        last=$now
    done
}

# Runs the load generator with "$@"; prints "<requests/s> <server us per
# request> <steal %>". Every request must be answered 200 (a run of 401s or 503s would
# give a ratio of something else).
measure() {
    local before after machine_before machine_after out rate answered statuses
    wait_idle
    before=$(server_ticks)
    machine_before=$(machine_ticks)
    out=$("$LOADGEN" --url "$URL" "$@" --concurrency "$CONCURRENCY" --duration "$DURATION" 2>&1) || true
    after=$(server_ticks)
    machine_after=$(machine_ticks)
    rate=$(sed -n 's/.* \([0-9]*\) requests\/s$/\1/p' <<<"$out")
    answered=$(sed -n 's/^requests: \([0-9]*\) answered, 0 failed.*/\1/p' <<<"$out")
    statuses=$(sed -n 's/^http status: //p' <<<"$out")
    if [ -z "$rate" ] || [ -z "$answered" ] || [ "$statuses" != "200 $answered" ]; then
        echo "http_ratio: a run was not answered 200 throughout:" >&2
        echo "$out" >&2
        return 1
    fi
    awk -v r="$rate" -v n="$answered" -v t=$((after - before)) -v hz="$TICKS_PER_S" \
        -v m0="$machine_before" -v m1="$machine_after" 'BEGIN {
        split(m0, a, " "); split(m1, b, " ")
        steal = (b[1] > a[1]) ? 100 * (b[2] - a[2]) / (b[1] - a[1]) : 0
        printf "%d %.1f %.1f\n", r, (t / hz) * 1e6 / n, steal }'
}

for pair in $(seq "$PAIRS"); do
    healthz_run=$(measure --healthz)
    activities_run=$(measure --token "$TOKEN" --wallets 10000)
    read -r healthz healthz_us healthz_steal <<<"$healthz_run"
    read -r activities activity_us activity_steal <<<"$activities_run"
    awk -v p="$pair" -v h="$healthz" -v a="$activities" -v hu="$healthz_us" -v au="$activity_us" \
        -v hs="$healthz_steal" -v as="$activity_steal" 'BEGIN {
        printf "http pair=%d healthz_per_s=%d activities_per_s=%d ratio=%.2f server_us_healthz=%s server_us_activity=%s steal_pct_healthz=%s steal_pct_activity=%s\n",
            p, h, a, a / h, hu, au, hs, as }' | tee -a "$DATA/pairs"
done

# The mean rates over all pairs, and over the pairs whose two runs both lost
# under QUIET percent of the machine to steal (none: no such line).
awk -v quiet="${QUIET:-5}" '
    function field(name,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] } }
    { h += field("healthz_per_s"); a += field("activities_per_s"); n++
      if (field("steal_pct_healthz") < quiet && field("steal_pct_activity") < quiet) {
          qh += field("healthz_per_s"); qa += field("activities_per_s"); qn++ } }
    END {
        if (n) printf "http all pairs=%d healthz_per_s=%d activities_per_s=%d ratio=%.2f\n", n, h / n, a / n, a / h
        if (qn) printf "http quiet pairs=%d steal_under_pct=%s healthz_per_s=%d activities_per_s=%d ratio=%.2f\n", qn, quiet, qh / qn, qa / qn, qa / qh
    }' "$DATA/pairs"
