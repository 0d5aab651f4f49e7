#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (server, shared and wasm code), unit and
# integration tests on SQLite and again on PostgreSQL (a throwaway cluster when none answers),
# then the Playwright tests in Debian's chromium against a fresh database.
# Installs what it needs first; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --browser

step() { printf '\n==> %s\n' "$*" >&2; }

step "format"
cargo fmt --all -- --check

step "no import circles (a module never imports what imports it)"
python3 scripts/check-imports.py domain/src app/src server/src

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown --locked -- -D warnings

# PostgreSQL for the tests (a fresh database per test is made on it): the one answering at
# TEST_DATABASE_URL, or a throwaway cluster for this run when none does.
TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
step "PostgreSQL for the tests"
# shellcheck source=scripts/postgres-for-tests.sh
. scripts/postgres-for-tests.sh
psql "$TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qAtc 'SELECT version()'

step "the domain builds without Leptos or axum"
if cargo tree -p domain --features server -e normal --prefix none | grep -E '^(leptos|axum|axum-login|tower-sessions)[ -]'; then
  echo "domain depends on the web layer (above)" >&2
  exit 1
fi

step "unit and integration tests on SQLite"
# Selecting the packages keeps the browser-only `hydrate` feature out of the server build.
cargo test -p domain -p app -p server --features app/ssr --locked

step "unit and integration tests on PostgreSQL"
TEST_BACKEND=postgres cargo test -p domain -p app -p server --features app/ssr --locked

step "end-to-end build"
cargo xtask build

step "end-to-end tests"
(cd end2end && npx playwright test)

step "the README's pictures can still be taken (into a scratch folder)"
pictures=$(mktemp -d)
(cd end2end && PICTURES_DIR="$pictures" npx playwright test -c pictures.config.ts)
rm -rf "$pictures"
