#!/usr/bin/env bash
# Install whatever mnemo's build, tests and demo need and is missing; skip what is already there
# at the right version. Idempotent. Works as root on a fresh Debian machine that has only the
# Rust toolchain (rustup), Node 20 and npm; uses sudo for apt when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[setup] %s\n' "$*"; }

# --- Debian packages: Chromium + ChromeDriver (browser tests, demo), Mesa lavapipe (native GPU tests)
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
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
say "ready"
