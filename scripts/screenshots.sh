#!/bin/sh
# Regenerates the README's pictures of the touchscreen, docs/screens/<screen>.png, headless with
# `lampi screenshot` (each screen with its example state; no display needed).
set -eu
cd "$(dirname "$0")/.."
cargo build --release
mkdir -p docs/screens
for screen in home alarm alarms natural pairing settings; do
    ./target/release/lampi --config /dev/null screenshot --screen "$screen" --out "docs/screens/$screen.png"
    echo "docs/screens/$screen.png"
done
