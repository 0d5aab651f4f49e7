#!/usr/bin/env bash
# Installs what building, serving and testing need and is not already present.
# Safe to run again: every step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=${1:-}

log() { printf '==> %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# No cargo-leptos or wasm-bindgen-cli to install: `cargo xtask build` (xtask/) builds the site
# with wasm-bindgen's library, compiled with the workspace.

# Debian's packages, installed only when missing: libpq for Diesel's PostgreSQL backend
# (linked into every build), psql, which the tests use to check the server is there, and nginx.
missing=()
[ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
command -v psql >/dev/null || missing+=(postgresql-client)
# nginx: the rolling-restart test runs two instances behind deploy/nginx.conf.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "$want_browser" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

if [ "$want_browser" = "--browser" ]; then
  if [ ! -f end2end/node_modules/.package-lock.json ] \
    || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    log "installing the end-to-end test packages"
    (cd end2end && npm ci --no-audit --no-fund)
  fi
fi
