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
# shellcheck disable=SC2086
$sudo apt-get install -y --no-install-recommends $missing || {
    # An index failing to download (a mirror mid-sync) need not stop the install: the install
    # says what is really missing.
    $sudo apt-get update || echo "apt-get update reported errors; installing anyway"
    # shellcheck disable=SC2086
    $sudo apt-get install -y --no-install-recommends $missing
}
