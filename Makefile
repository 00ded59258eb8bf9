# The two commands of the README. Both install what they need (Rust toolchain aside).
# (The UI's text needs fontconfig; udev, libinput and xkbcommon are the Pi touchscreen's, for
# lint, which builds the linuxkms backend too; strace watches the daemon's system calls;
# libdbus-1-dev is bluer's, for the `ble` feature, whose tests run a private dbus-daemon and a
# BlueZ stand-in on python3-dbusmock; rabbitmq-server is tests/cluster.rs's three-node cluster,
# which scripts/rabbitmq-cluster.sh runs privately: deps.sh keeps the system node from starting.)
TEST_PACKAGES = mosquitto mosquitto-clients rabbitmq-server openssl python3-ephem systemd strace pkg-config \
	libfontconfig-dev libudev-dev libinput-dev libxkbcommon-dev \
	libdbus-1-dev dbus-daemon python3-dbusmock

.PHONY: run test lint bench bench-fleet deb deb-arm64 deb-armhf screenshots

run:
	scripts/run.sh

# Each step says how long it took: CI caches nothing, and must stay well under its limit.
test:
	scripts/deps.sh $(TEST_PACKAGES)
	@start=$$(date +%s) && cargo test --features ble,ble-client,swarm && echo "cargo test: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-arm64.sh && echo "test-arm64: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-deb.sh && echo "test-deb: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-vm.sh && echo "test-vm: $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s) && scripts/test-ble-vm.sh && echo "test-ble-vm: $$(( $$(date +%s) - start )) s"

lint:
	scripts/deps.sh pkg-config libudev-dev libinput-dev libxkbcommon-dev libdbus-1-dev
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features ble,ble-client,swarm,jemalloc -- -D warnings
	cargo clippy --all-targets --features rpi,linuxkms,ble,ble-client -- -D warnings

bench:
	scripts/deps.sh $(TEST_PACKAGES) coreutils xvfb
	cargo bench --features ble

# The broker's ceiling (lampi swarm raw) and Locust beside it; makes a Python venv (PyPI).
bench-fleet:
	scripts/deps.sh mosquitto python3-venv util-linux
	benches/fleet-baselines.sh

# Debian packages in target/debian/: for this machine (simulated LED), and for Raspberry Pi OS
# 64-bit and 32-bit (real LED), cross-built with Debian's toolchains.
deb:
	scripts/deb.sh

deb-arm64:
	scripts/deb.sh aarch64-unknown-linux-gnu

deb-armhf:
	scripts/deb.sh armv7-unknown-linux-gnueabihf

# The README's pictures of the touchscreen (docs/screens/), rendered headless.
screenshots:
	scripts/screenshots.sh
