# mnemo — the two commands are `make demo` and `make test`; both install what is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CHROMEDRIVER ?= /usr/bin/chromedriver
# wasm-bindgen-test-runner gives each browser test binary 20 s by default; pipeline compilation on
# SwiftShader takes seconds per kernel variant, and the fetch suite (a 100k x 384 bank, a folded
# dispatch) about 140 s, so allow more (each binary still stops by itself).
WASM_BINDGEN_TEST_TIMEOUT ?= 300
export WASM_BINDGEN_TEST_TIMEOUT
# The native GPU tests assert this adapter (Mesa lavapipe in CI). Empty: accept any Vulkan adapter.
MNEMO_EXPECT_ADAPTER ?= llvmpipe
export MNEMO_EXPECT_ADAPTER
WASM_OPT := www/node_modules/.bin/wasm-opt
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-simd --enable-mutable-globals --enable-reference-types --enable-multivalue

# The engine module of the npm package (Cargo.toml, profile `pkg-engine`): lower LLVM inlining and
# unrolling thresholds for size, and wasm-opt -Oz (not -O3) on it. RUSTFLAGS replaces
# .cargo/config.toml's wasm32 rustflags, so simd128 is repeated here.
PKG_ENGINE_RUSTFLAGS := -C target-feature=+simd128 -C llvm-args=-inline-threshold=50 \
  -C llvm-args=-unroll-threshold=50

.PHONY: setup demo serve pkg test test-native test-browser test-e2e test-kill lint fmt clean bench eval \
  eval-native eval-encoder bench-native bench-peers bench-attention bench-recurrence bench-store bench-fetch \
  bench-hier bench-deps bench-encoder

## Install what is missing (idempotent), including the all-MiniLM-L6-v2 weights in .cache/minilm/.
setup:
	@scripts/setup.sh

## Build the npm package (pkg/) from three wasm-pack builds of the crate (no tool downloads; wasm-opt
## from npm binaryen): the `js-engine` module (mnemo.js + mnemo_bg.wasm: `Mnemo`, what a memory
## app loads; profile `pkg-engine`, wasm-opt -Oz), the `js-store` + `js-kernels` module (mnemo_extra*: `Store`, `Kernels`,
## `FlatBank`, `HierIndex`, loaded on first use) and the `mnemo/encoder` entry (mnemo_encoder*:
## `Mnemo` with the built-in text encoder), joined by scripts/pkg-split.mjs (which also drops the
## glue's whole-line comments: the .d.ts files keep the docs), their imports renamed short by
## scripts/short-imports.mjs; the npm README (pkg-readme/README.md; npm always ships README.md);
## the gzipped sizes (gzip -9).
pkg: setup
	RUSTFLAGS="$(PKG_ENGINE_RUSTFLAGS)" wasm-pack build --profile pkg-engine --target web \
	  --mode no-install --out-dir pkg --out-name mnemo -- --no-default-features --features js-engine
	$(WASM_OPT) -Oz $(WASM_FEATURES) pkg/mnemo_bg.wasm -o pkg/mnemo_bg.wasm
	wasm-pack build --release --target web --mode no-install --out-dir target/pkg-extra \
	  --out-name mnemo_extra -- --no-default-features --features js-store,js-kernels
	$(WASM_OPT) -O3 $(WASM_FEATURES) target/pkg-extra/mnemo_extra_bg.wasm -o pkg/mnemo_extra_bg.wasm
	RUSTFLAGS="$(PKG_ENGINE_RUSTFLAGS)" wasm-pack build --profile pkg-engine --target web \
	  --mode no-install --out-dir target/pkg-encoder --out-name mnemo_encoder -- --no-default-features \
	  --features js-engine,encoder
	$(WASM_OPT) -O3 $(WASM_FEATURES) target/pkg-encoder/mnemo_encoder_bg.wasm -o pkg/mnemo_encoder_bg.wasm
	node scripts/pkg-split.mjs pkg target/pkg-extra target/pkg-encoder
	node scripts/short-imports.mjs pkg mnemo mnemo_extra mnemo_encoder
	cp pkg-readme/README.md pkg/README.md
	@printf 'pkg: %s bytes wasm, %s bytes gzipped (wasm + js that a Mnemo app loads; target <= 358400)\n' \
	  "$$(stat -c %s pkg/mnemo_bg.wasm)" "$$(cat pkg/mnemo_bg.wasm pkg/mnemo.js | gzip -9 | wc -c)"
	@printf 'pkg: + %s bytes wasm, %s bytes gzipped (wasm + js) for Store / Kernels on first use; %s bytes gzipped in all\n' \
	  "$$(stat -c %s pkg/mnemo_extra_bg.wasm)" "$$(cat pkg/mnemo_extra_bg.wasm pkg/mnemo_extra.js | gzip -9 | wc -c)" \
	  "$$(( $$(cat pkg/mnemo_bg.wasm pkg/mnemo.js | gzip -9 | wc -c) + $$(cat pkg/mnemo_extra_bg.wasm pkg/mnemo_extra.js | gzip -9 | wc -c) ))"
	@printf 'pkg: the mnemo/encoder entry (Mnemo with the built-in text encoder, instead of mnemo.js): %s bytes wasm, %s bytes gzipped (wasm + js)\n' \
	  "$$(stat -c %s pkg/mnemo_encoder_bg.wasm)" "$$(cat pkg/mnemo_encoder_bg.wasm pkg/mnemo_encoder.js | gzip -9 | wc -c)"

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

## The SIGKILL durability test alone (20 rounds, as in `make test`; MNEMO_KILL_ROUNDS=N for more).
test-kill: pkg
	cd www && node tests/store-kill.test.mjs

## Benchmarks (numbers, never assertions): criterion natively (every bench in benches/, once,
## summarised into BENCHMARKS.md), the in-browser peers (bench/, headless Chromium, also into
## BENCHMARKS.md), then each kernel/store browser bench page. Each bench-* target also runs alone.
## BENCH_SIZES=10000,100000 (default) sets the peer benchmark's sizes; see bench/README.md.
bench: setup bench-native bench-peers
	$(MAKE) --no-print-directory BENCH_BROWSER_ONLY=1 bench-attention bench-recurrence bench-store bench-fetch bench-hier

## criterion benches (benches/*.rs), summarised from target/criterion into BENCHMARKS.md.
bench-native: setup
	@start=$$(date +%s); cargo bench && node bench/criterion.mjs --since $$start

## mnemo against voy, Orama, hnswlib-wasm, client-vector-search, PGlite+pgvector and a plain-JS
## scan, same data, same Chromium. Installs bench/'s npm packages (no install scripts: sharp must
## not download a binary) when missing or stale.
bench-peers: setup pkg bench-deps
	cd bench && BENCH_INVOKED_AS="make $(or $(MAKECMDGOALS),bench-peers)" node run.mjs

## bench/'s npm packages (the peers, transformers.js), installed when missing or stale.
bench-deps:
	@if [ ! -f bench/node_modules/.package-lock.json ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then \
	  echo "[bench] npm ci in bench"; (cd bench && npm ci --no-audit --no-fund --ignore-scripts >/dev/null); \
	else echo "[bench] npm packages in bench present"; fi

## The built-in text encoder against transformers.js (issue 8) in headless Chromium, one page run:
## sentences/s for batch 1 and 32 over the same LoCoMo turns on mnemo's CPU and WebGPU paths and
## transformers.js wasm / WebGPU (the same weights: scripts/export-onnx.sh makes the ONNX export in
## .cache/minilm-onnx when missing), cosine checks, cold start from the browser caches; no request
## leaves localhost. Needs ../shared/eval (MNEMO_EVAL_DIR); ~15 min on SwiftShader, so not in `bench`.
bench-encoder: setup pkg bench-deps
	scripts/export-onnx.sh
	cd www && node bench/encoder-run.mjs

## Attention benchmark in headless Chromium (WebGPU on SwiftShader): matmul peak, prefill
## GFLOP/s against it, decode latency vs KV length. Natively: `cargo bench --bench attention`.
bench-attention: pkg
	cd www && node bench/attention-run.mjs

## Linear recurrence prefill throughput: criterion natively (lavapipe), then the browser bench
## page (WebGPU on SwiftShader) driven headless. Prints tables; asserts nothing.
bench-recurrence: pkg
	$(if $(BENCH_BROWSER_ONLY),,cargo bench --bench recurrence)
	cd www && node bench/recurrence-run.mjs

## Store benchmark in headless Chromium: durable write throughput (batches of 1 and 1,000) and
## cold open of 10k / 100k x 384 from IndexedDB. Writes target/bench-store.json.
bench-store: pkg
	cd www && node bench/store-run.mjs

## LoCoMo retrieval eval through the engine in headless Chromium (IndexedDB, WebGPU/CPU): builds
## the `eval` variant of the package into target/pkg-eval, serves $MNEMO_EVAL_DIR/locomo (default
## ../shared/eval) read-only, prints the tables beside the baselines and checks them. Without the
## data it says so and exits 0.
eval: setup
	@if [ -f "$${MNEMO_EVAL_DIR:-../shared/eval}/locomo/turns.jsonl" ]; then \
	  wasm-pack build --release --target web --mode no-install --out-dir target/pkg-eval --out-name mnemo -- --features eval && \
	  $(WASM_OPT) -O3 $(WASM_FEATURES) target/pkg-eval/mnemo_bg.wasm -o target/pkg-eval/mnemo_bg.wasm; fi
	cd www && node scripts/run-eval.mjs

## Retrieval core on LoCoMo, natively (needs $MNEMO_EVAL_DIR/locomo, default ../shared/eval):
## the tables (vector-only, lexical-only, default fusion, fusion + fading context, hashed-ngrams)
## beside the baselines, the cross-validation behind the default weights, then BM25 speed/size.
eval-native:
	cargo run --example eval -- --tune
	cargo run --release --example eval_lexical_speed

## LoCoMo re-embedded by mnemo's own text encoder (CPU path, release build; a few minutes):
## every turn and question through `mnemo::encoder`, vector-only retrieval checked against the
## README's cosine baseline within 0.005 (needs $MNEMO_EVAL_DIR/locomo and .cache/minilm).
eval-encoder: setup
	cargo run --release --example eval_encoder

## Flat top-k in the browser (www/bench/fetch.html, headless Chromium, WebGPU on SwiftShader):
## latency median/p95 and scan bandwidth against a GPU copy kernel and wasm memcpy.
## Natively: `cargo bench --bench fetch`.
bench-fetch: pkg
	cd www && node bench/fetch-run.mjs

## Hierarchical memory bank in headless Chromium: build throughput, recall@10, bytes/query, latency
## (CPU path in wasm and WebGPU) at 10k and 100k x 384. MNEMO_HIER_SIZES=10000 for a subset.
bench-hier: pkg
	cd www && node bench/hier-run.mjs

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf pkg
