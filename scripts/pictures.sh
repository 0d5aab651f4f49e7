#!/usr/bin/env bash
# Takes the README's pictures from the running app (a fresh database, the debug build) with
# Playwright: docs/topics.png, docs/topics-phone.png, docs/activity.png and docs/live.png.
# PICTURES_DIR (relative to end2end/) writes them elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --browser
cargo xtask build
cd end2end
exec npx playwright test -c pictures.config.ts
