#!/bin/sh
# Installs the npm packages of a test folder, pinned by its package-lock.json,
# once: a second run with the same lockfile does nothing. The folder is the
# first argument, tests/dfns-sdk by default (the real @dfns/sdk and
# @dfns/sdk-keysigner, for tests/dfns_sdk.rs); scripts/chromium.sh passes
# tests/console-browser (playwright-core, for tests/console.rs).
#
# Exit status: 0 installed (or already was); 77 when node/npm is missing or
# the registry cannot be reached (the test then says so loudly and skips);
# anything else is a real failure.
set -eu

dir="$(cd "${1:-$(dirname "$0")/../tests/dfns-sdk}" && pwd)"
stamp="$dir/node_modules/.warden-installed"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "npm-install: node and npm are needed for $dir" >&2
    exit 77
fi

# Installed from this very lockfile already: nothing to do.
if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    exit 0
fi

# Concurrent test runs must not install into one directory at once.
. "$(dirname "$0")/lock.sh"
take_lock "$dir/.npm-install.lock" 600 npm-install

if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    exit 0
fi

cd "$dir"
if ! npm ci --no-audit --no-fund --loglevel=error; then
    if ! npm ping >/dev/null 2>&1; then
        echo "npm-install: the npm registry is unreachable" >&2
        exit 77
    fi
    exit 1
fi
cp package-lock.json "$stamp"
