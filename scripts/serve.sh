#!/usr/bin/env bash
# Serves the app at http://127.0.0.1:3000 on the embedded default: a SQLite file under ./data
# (created, migrated and seeded on start). Installs the build tools first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
case "${1:-}" in
  --release) cargo xtask build --release && exec target/release/server ;;
  "") cargo xtask build && exec target/debug/server ;;
  *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac
