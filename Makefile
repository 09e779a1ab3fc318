# pledgesync — the commands a developer, CI and the demo use.
# A new user needs two: `make demo` and `make test`.

SHELL := /bin/bash
CARGO ?= cargo
SERVICES := deploy/local/services.sh

export PLEDGESYNC__POSTGRES__URL ?= postgres://pledgesync:pledgesync@127.0.0.1:5432/pledgesync
export PLEDGESYNC__RABBITMQ__URL ?= amqp://guest:guest@127.0.0.1:5672/%2f
export PLEDGESYNC__REDIS__URL ?= redis://127.0.0.1:6379/0

.PHONY: fmt-check clippy demo-ui browser help services-up services-down services-status build test test-rust deploy-check lint fmt demo bench bench-quick clean

help:
	@echo "make demo            set up the services, sync a Zoho emulator into an audience, show the result"
	@echo "make test            set up the services and run the whole test suite"
	@echo "make demo-ui         the demo, then keep the stack up to browse the setup pages (Ctrl-C stops)"
	@echo "make lint            rustfmt check and clippy with warnings denied"
	@echo "make bench           benchmarks (make bench-quick: a tenth of the size)"
	@echo "make services-up     install (if missing) and start PostgreSQL, RabbitMQ and Redis on loopback"
	@echo "make services-down   stop them"

services-up:
	bash $(SERVICES) up

services-down:
	bash $(SERVICES) down

services-status:
	bash $(SERVICES) status

build:
	$(CARGO) build --workspace --all-targets

# The whole suite: lint, the Kubernetes manifests' checks, unit tests and the tests against real
# services and the Zoho emulator.
# Clippy is `make lint`'s: its check build shares nothing with the test build and would add
# several minutes to every run on a 2-core machine.
test: services-up browser fmt-check deploy-check test-rust

# Headless Chromium and ChromeDriver for the browser tests of the setup pages.
browser:
	bash deploy/local/browser.sh

# Renders both kustomize overlays, validates them offline against the Kubernetes schemas and scans
# manifests and Dockerfile with checkov (tools installed into .venv by the script).
deploy-check:
	bash deploy/check.sh

# The system tests start the real binaries, which `cargo test` builds only for crates that have
# integration tests of their own: build them all first. `--all-targets` keeps the feature set the
# test build uses (dev-dependencies on), so nothing is compiled twice.
test-rust:
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

demo: services-up
	bash deploy/local/demo.sh

# The demo, then the stack stays up so the setup pages can be browsed; Ctrl-C stops everything.
demo-ui: services-up
	DEMO_UI=1 bash deploy/local/demo.sh

# Benchmarks report figures (`name value unit`) and rewrite docs/performance.md; they never fail on
# a threshold. bench: up to 30 minutes; bench-quick: every figure at a tenth of the size.
# The harness is run from the workspace build that made the binaries it measures: `cargo run -p
# pledgesync-bench` builds the bench package alone, unifies dependency features differently and
# recompiled TLS and AMQP crates twice per run (about four minutes).
BENCH = $${CARGO_TARGET_DIR:-target}/release/pledgesync-bench
bench: services-up
	$(CARGO) build --release --bins
	$(BENCH) --scale full
	$(CARGO) bench -p zoho-emulator --bench paging
	$(CARGO) bench -p pledgesync-zoho --bench paging

bench-quick: services-up
	$(CARGO) build --release --bins
	$(BENCH) --scale quick

clean:
	$(CARGO) clean
