#!/bin/sh
# Installs the Debian packages that running or testing lampi needs, if they are missing.
# Usage: scripts/deps.sh PACKAGE...
set -eu
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own brokers (Mosquitto, RabbitMQ) on private ports: installing one must
# not start its system service as well. A policy-rc.d that exits 101 forbids that to invoke-rc.d
# and deb-systemd-invoke, with or without systemd as PID 1; one already there (a container's) is
# left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
    trap 'exit 130' INT TERM
fi
# shellcheck disable=SC2086
$sudo apt-get install -y --no-install-recommends $missing || {
    # An index failing to download (a mirror mid-sync) need not stop the install: the install
    # says what is really missing.
    $sudo apt-get update || echo "apt-get update reported errors; installing anyway"
    # shellcheck disable=SC2086
    $sudo apt-get install -y --no-install-recommends $missing
}
