#!/usr/bin/env bash
# Where an HTTP activity's CPU goes, against `GET /healthz` (BENCHMARKS.md,
# section 12, *eleventh pass*): samples the server with `perf` (cpu-clock,
# kernel included, call stacks by DWARF) while `loadgen` sends N activities,
# then N' health checks, and prints, per thread and per part of the path,
# the microseconds of CPU per request of each (perf's own cost included: the
# totals run above `benches/http_ratio.sh`'s).
#
#   benches/http_profile.sh                 # 50,000 activities, 120,000 /healthz
#   ACTIVITIES=20000 HEALTHZ=50000 benches/http_profile.sh
#
# A sample goes to the innermost part of its stack named below (the
# `PARTS` table); `other` is the rest. Needs `perf` (Debian: linux-perf) and
# python3; not run by the tests. WARDEN_BIN serves from another build.
set -euo pipefail

ACTIVITIES="${ACTIVITIES:-50000}"
HEALTHZ="${HEALTHZ:-120000}"
FREQ="${FREQ:-10000}"
command -v perf >/dev/null || { echo "http_profile: needs perf (linux-perf)" >&2; exit 1; }
# shellcheck source=benches/serve.sh
source "$(dirname "$0")/serve.sh"
serve_for_bench http-profile $((20000 + RANDOM % 20000))

"$LOADGEN" --url "$URL" --token "$TOKEN" --seed-policies --requests 3000 --concurrency 64 >/dev/null

# Samples the server while loadgen runs "$@"; writes its stacks to $1.
sample() {
    local out=$1; shift
    perf record -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -o "$DATA/perf.data" -p "$SERVER" 2>/dev/null &
    local perf=$!
    sleep 0.5
    "$LOADGEN" --url "$URL" "$@" --concurrency 64 --duration 600 | grep -E '^requests:' >&2
    kill -INT $perf; wait $perf 2>/dev/null || true
    perf script -i "$DATA/perf.data" -F comm,ip,sym --no-inline 2>/dev/null >"$out"
}
sample "$DATA/activity.txt" --token "$TOKEN" --requests "$ACTIVITIES"
sample "$DATA/healthz.txt" --healthz --requests "$HEALTHZ"

python3 - "$DATA/activity.txt" "$ACTIVITIES" "$DATA/healthz.txt" "$HEALTHZ" "$FREQ" <<'EOF'
import collections, sys

# (part, a substring of a frame's symbol); the innermost frame that names a
# part decides the sample's part.
PARTS = [
    ('state.apply', 'State>::apply'), ('journal.commit', 'JournalWriter::commit'), ('hub.react', 'Hub::react'),
    ('window.reserve', 'AddressBook::reserve'), ('record.encode', 'EvaluatedActivity::of'),
    ('notices', 'Notices::'), ('evaluate (rest)', 'evaluate_once'), ('externalId slot', 'evaluate_repeatable'),
    ('body json', 'JsonBody'), ('auth', 'http::auth::'), ('user_action mw + route', 'user_action::'),
    ('kernel sendto', '__sys_sendto'), ('kernel recvfrom', '__sys_recvfrom'), ('kernel epoll_wait', 'do_epoll_wait'),
    ('kernel other syscalls', 'do_syscall_64'), ('kernel irq/softirq', 'irq'),
    ('h1 decode', 'Decoder>::decode'), ('h1 encode', 'encoder'), ('actix handler glue', 'handler_service'),
    ('observe mw', 'observe::'), ('to_leader mw', 'to_leader'), ('h1 dispatcher', 'Dispatcher'),
    ('tokio', 'tokio::'),
]

def load(path):
    counts = collections.Counter()
    comm, stack = None, None
    def flush():
        if stack is None:
            return
        part = next((name for frame in stack for name, pattern in PARTS if pattern in frame), 'other')
        counts[(comm, part)] += 1
    for line in open(path):
        if line.startswith('\t'):
            fields = line.strip().split(' ', 1)
            stack.append(fields[1] if len(fields) > 1 else fields[0])
        elif line.strip():
            flush()
            comm, stack = line.split()[0][:15], []
    flush()
    return counts

period_us = 1e6 / float(sys.argv[5])
activity, n_activity = load(sys.argv[1]), int(sys.argv[2])
healthz, n_healthz = load(sys.argv[3]), int(sys.argv[4])
per = lambda counts, n, key: counts.get(key, 0) * period_us / n
keys = sorted(set(activity) | set(healthz), key=lambda k: -per(activity, n_activity, k))
print(f"{'thread':16} {'part':24} {'activity':>9} {'healthz':>8} {'extra':>7}   (us of CPU per request)")
for key in keys:
    a, h = per(activity, n_activity, key), per(healthz, n_healthz, key)
    if a >= 0.2 or h >= 0.2:
        print(f"{key[0]:16} {key[1]:24} {a:9.2f} {h:8.2f} {a - h:7.2f}")
ta = sum(per(activity, n_activity, k) for k in activity)
th = sum(per(healthz, n_healthz, k) for k in healthz)
print(f"{'all':16} {'':24} {ta:9.2f} {th:8.2f} {ta - th:7.2f}   ratio of CPU per request {th / ta:.2f}")
EOF
