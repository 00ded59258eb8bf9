# The two commands of the README. Both install what they need (Rust toolchain aside).
TEST_PACKAGES = mosquitto mosquitto-clients openssl python3-ephem systemd

.PHONY: run test lint bench deb deb-arm64 deb-armhf

run:
	scripts/run.sh

# Each step says how long it took: CI caches nothing, and must stay well under its limit.
test:
	scripts/deps.sh $(TEST_PACKAGES)
	@start=$$(date +%s) && cargo test && echo "cargo test: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-arm64.sh && echo "test-arm64: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-deb.sh && echo "test-deb: $$(( $$(date +%s) - start )) s"

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
