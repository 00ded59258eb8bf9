# Sourced by the check scripts that run inside the test VMs (scripts/vm-lib.sh installs it):
# results to the host's share, and bounded waits. The caller sets `journal_units` (the units
# whose journal a failure shows) before any `fail`.

# Everything from here on goes to the results share's log.
vm_results() {
    mkdir -p /results
    mount -t 9p -o trans=virtio,version=9p2000.L results /results || exit 1
    exec >/results/log 2>&1
}

say() { echo "== $*"; }
fail() {
    echo "FAILED: $*"
    set --
    for unit in $journal_units; do set -- "$@" -u "$unit"; done
    journalctl -b "$@" --no-pager | tail -n 60
    exit 1
}
within() { # SECONDS COMMAND...: COMMAND until it succeeds, for at most SECONDS
    limit=$1
    shift
    while [ "$limit" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
        limit=$((limit - 1))
    done
    return 1
}
passed() {
    echo passed >/results/status
}
