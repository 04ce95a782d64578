#!/bin/sh
# Installs what the console's browser tests need, once: Debian's `chromium`
# (apt-get, through sudo when not root) and the pinned `playwright-core` of
# tests/console-browser (through scripts/npm-install.sh). Playwright's own
# browser downloads are never used: the tests launch Debian's chromium by
# its path. Called by tests/console.rs; a second run does nothing.
#
# Prints the chromium executable's path on stdout.
# Exit status: 0 ready; 77 when apt-get/node/npm is missing or a registry
# cannot be reached (the test then says so loudly and skips); anything else
# is a real failure.
set -eu

root="$(cd "$(dirname "$0")/.." && pwd)"

find_chromium() {
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if ! browser="$(find_chromium)"; then
    if [ "$(id -u)" = 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        echo "chromium.sh: chromium is missing and apt-get needs root (no password-less sudo)" >&2
        exit 77
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "chromium.sh: chromium is missing and there is no apt-get to install it" >&2
        exit 77
    fi
    # Two test runs at once must not both run apt-get (dpkg's own lock would fail one).
    . "$(dirname "$0")/lock.sh"
    take_lock "${TMPDIR:-/tmp}/warden-chromium-install.lock" 900 chromium.sh
    if ! browser="$(find_chromium)"; then
        export DEBIAN_FRONTEND=noninteractive
        # The package lists may be absent (a fresh image) or stale.
        # Another apt-get (an unattended upgrade) may hold dpkg's lock: wait for it rather than fail.
        wait_lock="-o DPkg::Lock::Timeout=300"
        if ! $as_root apt-get $wait_lock update -qq >&2; then
            echo "chromium.sh: apt-get update failed (no registry?)" >&2
            exit 77
        fi
        if ! $as_root apt-get $wait_lock install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2; then
            echo "chromium.sh: apt-get install chromium failed" >&2
            exit 1
        fi
        browser="$(find_chromium)"
    fi
    rmdir "$_lock"
    trap - EXIT INT TERM
fi

sh "$root/scripts/npm-install.sh" "$root/tests/console-browser" >&2
echo "$browser"
