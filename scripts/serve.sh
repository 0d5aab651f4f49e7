#!/usr/bin/env bash
# Serves the app at http://127.0.0.1:3000 on the embedded default: a SQLite file under ./data
# (created, migrated and seeded on start). Installs the build tools first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo leptos serve "$@"
