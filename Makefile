# mnemo — the two commands are `make demo` and `make test`; both install what is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CHROMEDRIVER ?= /usr/bin/chromedriver
# The native GPU tests assert this adapter (Mesa lavapipe in CI). Empty: accept any Vulkan adapter.
MNEMO_EXPECT_ADAPTER ?= llvmpipe
export MNEMO_EXPECT_ADAPTER
WASM_OPT := www/node_modules/.bin/wasm-opt
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-simd --enable-mutable-globals --enable-reference-types --enable-multivalue

.PHONY: setup demo serve pkg test test-native test-browser test-e2e lint fmt clean bench eval bench-hier

## Install what is missing (idempotent).
setup:
	@scripts/setup.sh

## Build the npm package (pkg/): wasm-pack (no tool downloads) + wasm-opt from npm binaryen.
pkg: setup
	wasm-pack build --release --target web --mode no-install --out-dir pkg --out-name mnemo
	$(WASM_OPT) -O3 $(WASM_FEATURES) pkg/mnemo_bg.wasm -o pkg/mnemo_bg.wasm
	@printf 'pkg: %s bytes wasm, %s bytes gzipped (wasm + js)\n' \
	  "$$(stat -c %s pkg/mnemo_bg.wasm)" "$$(cat pkg/mnemo_bg.wasm pkg/mnemo.js | gzip -9 | wc -c)"

## The main job: build the package and run the demo in headless Chromium.
demo: pkg
	cd www && node scripts/run-demo.mjs

## Serve the demo for a real browser on http://localhost:8080/.
serve: pkg
	cd www && node scripts/serve.mjs

## Every test: format, lints (host + wasm32), native tests (GPU on lavapipe), browser tests
## (wasm-bindgen-test, then the Playwright end-to-end tests against the built package).
test: setup lint test-native test-browser test-e2e
	@echo "make test: all passed"

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --target wasm32-unknown-unknown -- -D warnings

test-native:
	cargo test -- --nocapture 2>&1 | grep -v '^XDG_RUNTIME_DIR\|^error: XDG_RUNTIME_DIR'; exit $${PIPESTATUS[0]}

test-browser:
	wasm-pack test --headless --chrome --chromedriver $(CHROMEDRIVER) --mode no-install

test-e2e: pkg
	cd www && node tests/run-all.mjs

## Benchmarks (numbers, never assertions): criterion natively, then the browser bench pages.
bench: setup bench-hier
	cargo bench

## Hierarchical memory bank in headless Chromium: build throughput, recall@10, bytes/query, latency
## (CPU path in wasm and WebGPU) at 10k and 100k x 384. MNEMO_HIER_SIZES=10000 for a subset.
bench-hier: pkg
	cd www && node bench/hier-run.mjs

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf pkg
