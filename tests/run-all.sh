#!/bin/bash
# Every test of xm-rs, as CI runs it (.ci/run calls this file verbatim):
#   1. installs what is missing (Debian packages; apt-get update first),
#   2. format, lints (clippy -D warnings) and every host test of the workspace,
#   3. the real-Xen lab: the harness self-test, then every lab scenario (tests/lab/scenarios).
# Exit status: 0 when everything passed, non-zero otherwise.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
step() { printf '\n==== %s [%s]\n' "$*" "$(date +%T)"; }
t0=$SECONDS

. "$REPO/tests/deps.sh"
step "checking Debian packages"
install_deps
command -v cargo >/dev/null || {
    echo "cargo not found: xm-rs needs a Rust toolchain (1.80 or newer, e.g. from rustup)" >&2; exit 2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test (workspace)"
cargo test --workspace --locked
step "lab: harness self-test (a scenario that never prints its marker must fail)"
tests/lab/selftest.sh
step "lab: every scenario on real Xen"
tests/lab/lab.sh --all
step "all tests passed in $((SECONDS - t0)) s"
