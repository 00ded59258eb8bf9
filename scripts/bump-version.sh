#!/bin/sh
# Sets the version everywhere it lives — Cargo.toml (the one source: `lampi --version` and
# reported.firmware.version come from it), Cargo.lock, and a new debian/changelog entry.
# Usage: scripts/bump-version.sh 0.2.0 "What changed, in a sentence or two."
set -eu
cd "$(dirname "$0")/.."
new=${1:?usage: $0 VERSION "changelog text"}
text=${2:?usage: $0 VERSION "changelog text"}
echo "$new" | grep -Eq '^[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}$' || {
    echo "$0: $new is not major.minor.patch" >&2
    exit 2
}
old=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ "$new" != "$old" ] || { echo "$0: already $new" >&2; exit 2; }
sed -i "0,/^version = \"$old\"$/s//version = \"$new\"/" Cargo.toml
cargo update --offline -p lampi >/dev/null 2>&1 || cargo metadata --format-version 1 >/dev/null
maintainer=$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -1)
entry=$(mktemp)
{
    printf 'lampi (%s-1) unstable; urgency=medium\n\n' "$new"
    echo "$text" | fold -s -w 74 | sed 's/ *$//; 1s/^/  * /; 1!s/^/    /'
    printf '\n -- %s  %s\n\n' "$maintainer" "$(date -R)"
    cat debian/changelog
} > "$entry"
mv "$entry" debian/changelog
echo "lampi $old -> $new"
