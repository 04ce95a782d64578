# Sourced by the HTTP bench scripts: builds `warden` and `loadgen` (release),
# starts `warden serve` (development mode, RUST_LOG=warn, a fresh data
# directory) on 127.0.0.1:$PORT, waits until it answers, and sets WARDEN,
# LOADGEN, URL, DATA, SERVER and TOKEN; the server and its data go when the
# script exits. WARDEN_BIN serves from another build (to alternate two).
#
#   serve_for_bench <script name> <port>

serve_for_bench() {
    local name=$1 port=$2 root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin warden --example loadgen
    local target=${CARGO_TARGET_DIR:-$root/target}
    WARDEN="${WARDEN_BIN:-$target/release/warden}"
    LOADGEN="$target/release/examples/loadgen"
    URL="http://127.0.0.1:$port"
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/warden-$name.XXXXXX")
    RUST_LOG=warn "$WARDEN" serve --listen "127.0.0.1:$port" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
    SERVER=$!
    trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -rf "$DATA"' EXIT
    TOKEN=""
    for _ in $(seq 300); do
        TOKEN=$(sed -n 's/^WARDEN_TOKEN=//p' "$DATA/server.log" | head -n 1)
        [ -n "$TOKEN" ] && curl -fs "$URL/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ -n "$TOKEN" ] || { echo "$name: the server did not start; its log:" >&2; cat "$DATA/server.log" >&2; exit 1; }
}
