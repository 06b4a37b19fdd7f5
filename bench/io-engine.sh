#!/usr/bin/env bash
# Bundles bench/io-engine.ts with the esbuild that vitest brings, then runs it against the built addon.
# Usage: bash bench/io-engine.sh [--seconds N] [--size-mib N] [--only tmpfs|disk|disk-direct]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/Release/vtgt_native.node ] || npm run build:native
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
npx esbuild bench/io-engine.ts --bundle --platform=node --format=esm --target=node20 \
  --external:pino --log-level=warning --outfile="$out/io-engine.mjs"
VTGT_NATIVE_ADDON="$PWD/build/Release/vtgt_native.node" node "$out/io-engine.mjs" "$@"
