# The two commands of the README. Both install what they need (Rust toolchain aside).
TEST_PACKAGES = mosquitto mosquitto-clients openssl python3-ephem systemd

.PHONY: run test lint bench

run:
	scripts/run.sh

test:
	scripts/deps.sh $(TEST_PACKAGES)
	cargo test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features rpi -- -D warnings

bench:
	scripts/deps.sh $(TEST_PACKAGES) coreutils
	cargo bench
