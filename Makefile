# The two commands of the README. Both install what they need (Rust toolchain aside).
TEST_PACKAGES = mosquitto mosquitto-clients openssl python3-ephem systemd

.PHONY: run test lint bench deb deb-arm64 deb-armhf

run:
	scripts/run.sh

test:
	scripts/deps.sh $(TEST_PACKAGES)
	cargo test
	scripts/test-arm64.sh
	scripts/test-deb.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features rpi -- -D warnings

bench:
	scripts/deps.sh $(TEST_PACKAGES) coreutils
	cargo bench

# Debian packages in target/debian/: for this machine (simulated LED), and for Raspberry Pi OS
# 64-bit and 32-bit (real LED), cross-built with Debian's toolchains.
deb:
	scripts/deb.sh

deb-arm64:
	scripts/deb.sh aarch64-unknown-linux-gnu

deb-armhf:
	scripts/deb.sh armv7-unknown-linux-gnueabihf
