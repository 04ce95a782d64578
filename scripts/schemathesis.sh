#!/bin/sh
# Installs a pinned Schemathesis into a virtual environment under target/ and
# prints the path of its `st` command. Idempotent: a second run with the
# same pin does nothing but print the path.
# Usage: sh scripts/schemathesis.sh [TARGET_DIR]   (default: ./target)
set -eu
VERSION=4.32.5
target="${1:-${CARGO_TARGET_DIR:-target}}"
venv="$target/schemathesis-$VERSION"
st="$venv/bin/st"
if [ ! -x "$st" ] || [ ! -f "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
    touch "$venv/.installed"
fi
echo "$st"
