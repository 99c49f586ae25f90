# shellcheck shell=bash
# Fetch the Debian .debs the lab boots (Xen, dom0 kernel, Xen tools, busybox) into a cache
# outside the repo, keyed by the exact package versions, and unpack them once.
#
# Cache layout ($LAB_CACHE, default ~/.cache/xm-rs-lab):
#   debs/<key>/*.deb     the downloaded packages        (<key> = hash of "name=version" lines)
#   root/<key>/          all of them unpacked with dpkg-deb -x
#   manifests/<key>      the "name=version" lines
#   current              the key of the last complete fetch, reused without apt when it is whole

XEN_VERSION=4.17
LAB_BASE_PACKAGES="xen-hypervisor-$XEN_VERSION-amd64 xen-utils-$XEN_VERSION xen-utils-common
    xenstore-utils libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1
    libxenmisc$XEN_VERSION libxenstore4 libxentoollog1 libxendevicemodel1 libxenhypfs1
    libxentoolcore1 libyajl2 busybox-static"

# resolve_versions PKG...: print "name=version" for the candidate of each package, or fail.
resolve_versions() {
    local p v
    for p in "$@"; do
        v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/{print $2; exit}')
        [ -n "$v" ] && [ "$v" != "(none)" ] || return 1
        echo "$p=$v"
    done
}

# kernel_package: the linux-image-<abi>-amd64 package linux-image-amd64 points at.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}

# fetch_debs EXTRA_PKG...: sets LAB_ROOT (unpacked tree) and LAB_MANIFEST.
fetch_debs() {
    local extra="$*" key manifest kpkg pkgs lists_fresh=0
    mkdir -p "$LAB_CACHE"/{debs,root,manifests}
    exec 9>"$LAB_CACHE/.lock"
    flock -w 900 9 || lab_die "could not lock $LAB_CACHE within 900 s"

    # Reuse the last complete fetch without touching apt when it holds every package asked for.
    if [ -z "${LAB_REFRESH:-}" ] && [ -s "$LAB_CACHE/current" ]; then
        key=$(cat "$LAB_CACHE/current")
        if [ -e "$LAB_CACHE/root/$key/.unpacked" ] && has_all_packages "$key" $extra; then
            LAB_ROOT=$LAB_CACHE/root/$key LAB_MANIFEST=$LAB_CACHE/manifests/$key
            exec 9>&-; return 0
        fi
    fi

    kpkg=$(kernel_package)
    if [ -z "$kpkg" ] || ! resolve_versions $LAB_BASE_PACKAGES $extra >/dev/null; then
        lab_log "refreshing apt package lists"
        run_as_root timeout 600 apt-get update -qq || lab_die "apt-get update failed"
        lists_fresh=1
        kpkg=$(kernel_package)
        [ -n "$kpkg" ] || lab_die "cannot find the Debian kernel package (linux-image-amd64)"
    fi
    pkgs="$LAB_BASE_PACKAGES $kpkg $extra"
    manifest=$(resolve_versions $pkgs | sort) || lab_die "cannot resolve versions of: $pkgs"
    key=$(printf '%s\n' "$manifest" | sha256sum | cut -c1-16)
    printf '%s\n' "$manifest" > "$LAB_CACHE/manifests/$key"

    local dir=$LAB_CACHE/debs/$key missing=()
    mkdir -p "$dir"
    local line name ver
    while read -r line; do
        name=${line%%=*} ver=${line#*=}
        ls "$dir/${name}_"*.deb >/dev/null 2>&1 || missing+=("$name=$ver")
    done <<< "$manifest"
    if [ ${#missing[@]} -gt 0 ]; then
        lab_log "downloading ${#missing[@]} packages into $dir"
        if ! (cd "$dir" && timeout 600 apt-get download -q "${missing[@]}" >/dev/null 2>"$dir/.download.err"); then
            [ $lists_fresh = 1 ] || { run_as_root timeout 600 apt-get update -qq; }
            (cd "$dir" && timeout 600 apt-get download -q "${missing[@]}") ||
                lab_die "apt-get download failed for: ${missing[*]}"
        fi
    fi
    if [ ! -e "$LAB_CACHE/root/$key/.unpacked" ]; then
        lab_log "unpacking .debs into $LAB_CACHE/root/$key"
        rm -rf "$LAB_CACHE/root/$key"; mkdir -p "$LAB_CACHE/root/$key"
        local f
        for f in "$dir"/*.deb; do dpkg-deb -x "$f" "$LAB_CACHE/root/$key"; done
        touch "$LAB_CACHE/root/$key/.unpacked"
    fi
    echo "$key" > "$LAB_CACHE/current"
    LAB_ROOT=$LAB_CACHE/root/$key LAB_MANIFEST=$LAB_CACHE/manifests/$key
    exec 9>&-
}

# has_all_packages KEY PKG...: the manifest KEY lists every PKG.
has_all_packages() {
    local key=$1 p; shift
    for p in "$@"; do grep -q "^$p=" "$LAB_CACHE/manifests/$key" || return 1; done
}
