# shellcheck shell=bash
# The Debian packages xm-rs needs to build, test and run its lab, in one place.
# Sourced by tests/run-all.sh and tests/lab/lab.sh: `install_deps` installs the missing ones
# (apt-get update first), as root or through sudo.
XM_RS_DEBS=(build-essential pkg-config libxen-dev libclang-dev clang qemu-system-x86 cpio
            xz-utils gzip zstd lz4 bzip2 util-linux mount dpkg libc-bin libgcc-s1 perl-base)

install_deps() {
    local p missing=() sudo=
    for p in "${XM_RS_DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo timeout 900 apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive timeout 1800 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
