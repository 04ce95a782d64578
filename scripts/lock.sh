# Sourced by the install scripts: `take_lock DIR SECONDS WHO` waits until this
# run holds the lock directory DIR (mkdir is atomic), at most SECONDS, and
# releases it when the script ends. Two test runs at once must not install
# into one place together.
take_lock() {
    _lock="$1"
    _waited=0
    until mkdir "$_lock" 2>/dev/null; do
        _waited=$((_waited + 1))
        if [ "$_waited" -gt "$2" ]; then
            echo "$3: $_lock has been held for $2 s; remove it if no install is running" >&2
            exit 1
        fi
        sleep 1
    done
    trap 'rmdir "$_lock" 2>/dev/null || true' EXIT INT TERM
}
