#!/bin/bash
# The xm-rs real-Xen lab: boots Xen 4.17 with a Debian dom0 under qemu-system-x86_64 (TCG),
# runs scenario scripts inside dom0 and judges them from markers on the serial log.
#
#   tests/lab/lab.sh [--all] [SCENARIO...]
#
# SCENARIO is a file tests/lab/scenarios/SCENARIO.sh (see tests/lab/README.md for the
# directives it may carry). --all runs every scenario except the harness self-tests
# (selftest-*). Scenarios that ask for the same xenstored share one boot.
#
# Environment:
#   LAB_OUT=DIR        where logs and the timing summary go (default target/lab)
#   LAB_CACHE=DIR      .deb cache outside the repo (default ~/.cache/xm-rs-lab)
#   LAB_REFRESH=1      re-resolve package versions with apt even if the cache is complete
#   LAB_QEMU_MEM=2048  LAB_DOM0_MEM=768  LAB_SMP=2   machine sizes (MiB / vCPUs)
#   LAB_VERBOSE=1      echo the whole serial log (Xen and kernel boot too), not only scenarios
#   LAB_PROFILE=release  cargo profile of the binaries put into dom0
#   LAB_SKIP_BUILD=1   put none of our binaries into dom0 (harness work on Debian's tools only)
# Exit status: 0 all scenarios passed; 1 a scenario failed; 2 the harness could not run.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO=$(cd "$LAB_DIR/../.." && pwd)
LAB_OUT=${LAB_OUT:-$LAB_REPO/target/lab}
LAB_CACHE=${LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xm-rs-lab}
LAB_QEMU_MEM=${LAB_QEMU_MEM:-2048}
LAB_DOM0_MEM=${LAB_DOM0_MEM:-768}
LAB_SMP=${LAB_SMP:-2}
LAB_PROFILE=${LAB_PROFILE:-release}
# seconds dom0 may take from QEMU start to its first scenario, and the host's grace period
# past a scenario's own timeout (dom0 enforces the timeout itself; this is a backstop)
LAB_BOOT_BUDGET=${LAB_BOOT_BUDGET:-240}
LAB_BACKSTOP=${LAB_BACKSTOP:-45}

. "$LAB_DIR/lib/common.sh"
. "$LAB_DIR/lib/fetch.sh"
. "$LAB_DIR/lib/image.sh"
. "$LAB_DIR/lib/boot.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

scenario_timeout() {
    local t; t=$(scenario_directive "$LAB_DIR/scenarios/$1.sh" timeout | head -1)
    echo "${t:-120}"
}

main() {
    local scenarios=() a s
    for a in "$@"; do
        case $a in
            -h|--help) usage; exit 0 ;;
            --all) for s in "$LAB_DIR"/scenarios/*.sh; do
                       s=$(basename "$s" .sh); [[ $s == selftest-* ]] || scenarios+=("$s"); done ;;
            -*) lab_die "unknown option $a (see --help)" ;;
            *) scenarios+=("$a") ;;
        esac
    done
    [ ${#scenarios[@]} -gt 0 ] || { usage; lab_die "no scenario given"; }
    for s in "${scenarios[@]}"; do
        [ -f "$LAB_DIR/scenarios/$s.sh" ] || lab_die "no such scenario: $s (tests/lab/scenarios/$s.sh)"
    done

    # boots: one per xenstored flavour, in the order scenarios were named
    local -A group_of=() ; local groups=() g extra_pkgs=() extra_bins=() extra_data=()
    for s in "${scenarios[@]}"; do
        g=$(scenario_directive "$LAB_DIR/scenarios/$s.sh" xenstored | head -1); g=${g:-debian}
        case $g in debian|ours) ;; *) lab_die "scenario $s: lab-xenstored must be 'debian' or 'ours', not '$g'" ;; esac
        [[ " ${groups[*]} " == *" $g "* ]] || groups+=("$g")
        group_of[$s]=$g
        read -r -a a <<< "$(scenario_directive "$LAB_DIR/scenarios/$s.sh" packages | tr '\n' ' ')"
        extra_pkgs+=("${a[@]}")
        read -r -a a <<< "$(scenario_directive "$LAB_DIR/scenarios/$s.sh" bins | tr '\n' ' ')"
        extra_bins+=("${a[@]}")
        read -r -a a <<< "$(scenario_directive "$LAB_DIR/scenarios/$s.sh" data | tr '\n' ' ')"
        extra_data+=("${a[@]}")
    done

    rm -rf "$LAB_OUT"; mkdir -p "$LAB_OUT/share" "$LAB_OUT/build"
    LAB_BUILD=$LAB_OUT/build
    local t_start=$SECONDS
    ensure_host_tools
    fetch_debs $(printf '%s\n' "${extra_pkgs[@]}" | sort -u)
    LAB_KVER=$(sed -n 's/^linux-image-\([^=]*\)=.*/\1/p' "$LAB_MANIFEST")
    LAB_VMLINUZ=$LAB_ROOT/boot/vmlinuz-$LAB_KVER
    LAB_MODDIR=$LAB_ROOT/lib/modules/$LAB_KVER
    [ -f "$LAB_VMLINUZ" ] || lab_die "kernel $LAB_VMLINUZ missing from the unpacked .debs"
    mapfile -t LAB_EXTRA_BINS < <(printf '%s\n' "${extra_bins[@]}" | sort -u | sed '/^$/d')
    mapfile -t LAB_EXTRA_DATA < <(printf '%s\n' "${extra_data[@]}" | sort -u | sed '/^$/d')

    build_workspace
    lab_log "building the guest and dom0 images"
    build_guest_initrd "$LAB_BUILD/guest.cpio.gz"
    build_rootdisk_guest
    build_dom0_base "$LAB_BUILD/dom0-base.cpio.gz"
    zcat "$LAB_ROOT/boot/xen-$XEN_VERSION-amd64.gz" > "$LAB_BUILD/xen"
    lab_log "images ready after $((SECONDS - t_start)) s (dom0 base $(du -h "$LAB_BUILD/dom0-base.cpio.gz" | cut -f1))"

    local idx=0 members
    for g in "${groups[@]}"; do
        idx=$((idx + 1)); members=()
        for s in "${scenarios[@]}"; do [ "${group_of[$s]}" = "$g" ] && members+=("$s"); done
        boot_group "$idx" "$g" "${members[@]}"
    done
    report "${scenarios[@]}"
}

# build_workspace: release-build every binary of the workspace; LAB_OUR_BINS lists them.
build_workspace() {
    if [ -n "${LAB_SKIP_BUILD:-}" ]; then
        lab_log "LAB_SKIP_BUILD set: dom0 gets none of our binaries"; LAB_OUR_BINS=(); return 0
    fi
    lab_log "building the workspace ($LAB_PROFILE)"
    local json
    json=$(cd "$LAB_REPO" && timeout 3600 cargo build --profile "$LAB_PROFILE" --workspace --bins \
        --message-format=json-render-diagnostics) || lab_die "cargo build failed"
    mapfile -t LAB_OUR_BINS < <(grep -o '"executable":"[^"]*"' <<< "$json" | cut -d'"' -f4 | sort -u)
    lab_log "our binaries for dom0: ${LAB_OUR_BINS[*]##*/}"
}

main "$@"
