#!/bin/sh
# Publishes lampi packages to a signed apt repository made with reprepro, which lamps update
# from (see lampi-update). Run it on the machine that serves the repository.
#
# Usage: scripts/publish-apt.sh REPO_DIR PACKAGE.deb...
#   LAMPI_GPG_KEY=<key id>  the signing key; without it a test key is generated once, kept in
#                           REPO_DIR/gnupg (no passphrase: for testing only).
# Afterwards REPO_DIR holds the repository (serve it over HTTP) and lampi-archive-keyring.gpg,
# the public key lamps need in /usr/share/keyrings/. A lamp's source line:
#   deb [signed-by=/usr/share/keyrings/lampi-archive-keyring.gpg] http://HOST/ bookworm main
# in /etc/apt/sources.list.d/lampi.list (lampi-update refreshes only that list).
# reprepro (5.3 in Debian 12) keeps one version per package: to send lamps back to an older
# one, `reprepro --basedir REPO_DIR remove bookworm lampi` and publish the older package.
set -eu
repo=${1:?usage: $0 REPO_DIR PACKAGE.deb...}
shift
[ $# -gt 0 ] || { echo "usage: $0 REPO_DIR PACKAGE.deb..." >&2; exit 2; }
"$(dirname "$0")/deps.sh" reprepro gnupg
mkdir -p "$repo/conf"

key=${LAMPI_GPG_KEY:-}
if [ -z "$key" ]; then
    export GNUPGHOME="$repo/gnupg"
    mkdir -p "$GNUPGHOME"
    chmod 700 "$GNUPGHOME"
    if ! gpg --batch --list-secret-keys lampi-test-repository >/dev/null 2>&1; then
        gpg --batch --quiet --passphrase '' --quick-generate-key \
            "lampi test repository <lampi-test-repository@example.invalid>" ed25519 sign never
    fi
    key=$(gpg --batch --list-secret-keys --with-colons lampi-test-repository | awk -F: '/^fpr/ { print $10; exit }')
fi
gpg --batch --yes --export "$key" > "$repo/lampi-archive-keyring.gpg"

if [ ! -f "$repo/conf/distributions" ]; then
    cat > "$repo/conf/distributions" <<CONF
Origin: lampi
Label: lampi
Codename: bookworm
Architectures: amd64 arm64 armhf
Components: main
Description: lampi firmware for LAMPI lamps
SignWith: $key
CONF
fi
for deb in "$@"; do
    reprepro --basedir "$repo" includedeb bookworm "$deb"
done
reprepro --basedir "$repo" list bookworm
