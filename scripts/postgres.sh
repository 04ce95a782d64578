#!/usr/bin/env bash
# Prints the directory of PostgreSQL's server programs (initdb, postgres),
# installing Debian's `postgresql` package first when they are missing.
#
# Idempotent and safe to run from several test processes at once (an flock
# serializes the install). Called by `warden_postgres::testing::TempPostgres`,
# so `cargo test --workspace` needs no manual step; run it by hand to install
# ahead of time. Everything but the directory goes to stderr.
set -euo pipefail

# The newest Debian layout (/usr/lib/postgresql/<major>/bin) first, then
# whatever `initdb` is on the PATH.
find_bindir() {
    local dir best="" best_major=0 major
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] || continue
        major=$(basename "$(dirname "$dir")")
        if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -gt "$best_major" ]; then
            best="$dir" best_major="$major"
        fi
    done
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(readlink -f "$(command -v initdb)")")
        [ -x "$dir/postgres" ] && best="$dir"
    fi
    [ -n "$best" ] && echo "$best"
}

if bindir=$(find_bindir); then
    echo "$bindir"
    exit 0
fi

exec 9>"${TMPDIR:-/tmp}/warden-postgres-install.lock"
flock 9
if ! bindir=$(find_bindir); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "postgres.sh: PostgreSQL is missing; installing Debian's postgresql package" >&2
    # The tests run their own throwaway servers: the package's default
    # cluster on port 5432 is not wanted.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        $sudo mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq -o Dpkg::Options::=--force-confold postgresql >&2
    bindir=$(find_bindir) || { echo "postgres.sh: postgresql installed, but no initdb found" >&2; exit 1; }
fi
echo "$bindir"
