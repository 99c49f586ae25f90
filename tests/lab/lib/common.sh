# shellcheck shell=bash
# Shared helpers for the host side of the lab harness.

lab_log() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }
lab_die() { printf '[lab %s] ERROR: %s\n' "$(date +%T)" "$*" >&2; exit 2; }

# run_as_root CMD...: run CMD as root (directly, or through sudo when available).
run_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else lab_die "'$*' needs root and sudo is not available"; fi
}

# ensure_host_tools: install the Debian packages the lab needs when any is missing. Only this
# step (and refreshing apt's lists) may need root; everything else runs as the invoking user.
ensure_host_tools() {
    . "$LAB_REPO/tests/deps.sh"
    install_deps
    [ -n "${LAB_SKIP_BUILD:-}" ] || command -v cargo >/dev/null || lab_die "cargo not found: a Rust toolchain (1.80 or newer, e.g. rustup) is needed"
}

# scenario_directive FILE NAME: print the values of '# lab-NAME: value' lines, one per line.
scenario_directive() {
    sed -n "s/^# lab-$2:[[:space:]]*//p" "$1" | sed 's/[[:space:]]*$//'
}
