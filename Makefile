# The README's commands. Build caches live outside the checkout.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/fairlead-target

.PHONY: quickstart test lint bench bench-config bench-failover deps e2e-bins images fuzz

## Two demo backends and fairlead on deploy/examples/: curl localhost:8080
quickstart:
	scripts/quickstart.sh

## Everything CI checks: formatting, clippy, generated files, all tests.
test: deps e2e-bins lint
	cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## fairlead vs HAProxy on loopback (not a test: prints figures and ratios).
bench: deps
	python3 scripts/bench.py

## Config scale (prints figures, not a test): dataplane apply time and memory per
## server vs HAProxy; then the operator's change-to-applied latency on a real API server.
bench-config: deps e2e-bins
	cargo build --release -p fairlead-dataplane --bin fairlead-dataplane -p fairlead-operator --bin fairlead-operator
	cargo build -p fairlead-e2e --bin config-scale
	python3 scripts/bench-config-scale.py
	$(CARGO_TARGET_DIR)/debug/config-scale --operator $(CARGO_TARGET_DIR)/release/fairlead-operator --dataplane $(CARGO_TARGET_DIR)/release/fairlead-dataplane

## VRRP failover, fairlead vs Keepalived in network namespaces (root; prints figures, not a test).
bench-failover: deps
	cargo build --release -p fairlead-operator --bin fairlead
	python3 scripts/failover-bench.py

deps:
	scripts/install-deps.sh

## The e2e tools (etcd, kube-apiserver, kubectl, kubelet, kube-controller-manager,
## kube-scheduler, helm, kubeconform, prometheus, h2spec), built from e2e/go/ when missing.
e2e-bins:
	scripts/build-e2e-bins.sh >/dev/null

## Release images (static musl binaries FROM scratch, no daemon) into dist/.
images:
	scripts/build-images.sh

## Every fuzz target for 30 s (nightly + cargo-fuzz; caches in ~/.cache/fairlead-fuzz).
fuzz:
	scripts/fuzz.sh 30
