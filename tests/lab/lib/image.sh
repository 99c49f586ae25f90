# shellcheck shell=bash
# Build the guest and dom0 initramfs images from the unpacked .debs ($LAB_ROOT), the host's
# few extra tools, our release binaries, and the scenarios.

# copy_elf SRC DEST ROOTFS: copy an ELF to DEST inside ROOTFS with every shared library it
# needs (looked up in the unpacked .debs first, then on the host). Fails on a missing library.
copy_elf() {
    local src=$1 dst=$2 rfs=$3 lib rel deps
    mkdir -p "$rfs/$(dirname "$dst")"
    cp -L "$src" "$rfs/$dst"
    deps=$(LD_LIBRARY_PATH=$LAB_ROOT/usr/lib/x86_64-linux-gnu:$LAB_ROOT/lib/x86_64-linux-gnu ldd "$src" 2>&1) || {
        # static binaries make ldd exit non-zero with "not a dynamic executable"
        grep -q 'not a dynamic executable\|statically linked' <<< "$deps" && return 0
        lab_die "ldd $src failed: $deps"
    }
    if grep -q 'not found' <<< "$deps"; then
        lab_die "$src needs libraries found neither in the .debs nor on the host: $(grep 'not found' <<< "$deps" | tr -s ' \t' ' ')"
    fi
    awk '$2=="=>" && $3 ~ /^\//{print $3} $1 ~ /^\//{print $1}' <<< "$deps" |
    while read -r lib; do
        rel=${lib#"$LAB_ROOT"}; rel=${rel#/usr}         # merged /usr: everything under usr/lib
        [ -e "$rfs/usr$rel" ] || { mkdir -p "$rfs/usr$(dirname "$rel")"; cp -L "$lib" "$rfs/usr$rel"; }
    done
}

# Kernel modules in dependency order, from each module's "depends=" modinfo field (the
# unpacked kernel has no modules.dep and we do not run depmod).
declare -A LAB_MODSEEN
mod_order() {
    local name=$1 path deps d
    [ -n "${LAB_MODSEEN[$name]:-}" ] && return 0
    LAB_MODSEEN[$name]=1
    path=$(cd "$LAB_MODDIR" && find kernel \( -name "$name.ko" -o -name "${name//-/_}.ko" -o -name "${name//_/-}.ko" \) | head -1)
    if [ -z "$path" ]; then
        grep -qE "/(${name}|${name//-/_}).ko" "$LAB_MODDIR/modules.builtin" && return 0
        lab_die "kernel module $name not found in $LAB_MODDIR"
    fi
    deps=$(grep -ao 'depends=[^[:cntrl:]]*' "$LAB_MODDIR/$path" | head -1 | cut -d= -f2 | tr , ' ')
    for d in $deps; do mod_order "$d"; done
    echo "$path"
}
# add_modules ROOTFS MODULE...: copy modules and write /modules/order for insmod.
add_modules() {
    local rfs=$1 p list; shift
    LAB_MODSEEN=()
    list=$(for m in "$@"; do mod_order "$m" || exit 1; done) || lab_die "module resolution failed"
    mkdir -p "$rfs/modules"
    for p in $list; do cp "$LAB_MODDIR/$p" "$rfs/modules/"; done
    echo "$list" | xargs -n1 basename > "$rfs/modules/order"
}

mk_busybox_rootfs() {
    local r=$1 a
    rm -rf "$r"
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/lib/x86_64-linux-gnu,usr/lib64} \
             "$r"/{proc,sys,dev,run,tmp,etc,root,mnt,var/log,var/lib,var/lock}
    ln -s usr/lib "$r/lib"; ln -s usr/lib64 "$r/lib64"; ln -s ../run "$r/var/run"
    cp "$LAB_ROOT/bin/busybox" "$r/bin/busybox"
    for a in $("$LAB_ROOT/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
    # the kernel runs /sbin/poweroff and /sbin/reboot itself when the toolstack asks a guest
    # to shut down (xenstore control/shutdown -> orderly_poweroff)
    for a in poweroff reboot halt; do ln -s ../bin/busybox "$r/sbin/$a"; done
    echo "root:x:0:0:root:/root:/bin/sh" > "$r/etc/passwd"
    echo "root:x:0:" > "$r/etc/group"
}

# pack DIR OUT: a gzip'ed newc cpio of DIR with every file owned by root (no root needed).
pack() {
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) > "$2"
}

# build_guest_initrd OUT: the busybox guest used by the scenarios (its /init is guest/init).
build_guest_initrd() {
    local g=$LAB_BUILD/guest-rootfs
    mk_busybox_rootfs "$g"
    add_modules "$g" xen-blkfront xen-netfront
    install -m 755 "$LAB_DIR/guest/init" "$g/init"
    pack "$g" "$1"
}

# build_dom0_base OUT: everything every boot shares (busybox, Xen tools and their hotplug
# scripts, modules, the host tools the scripts need, our release binaries, the guest kernel
# and initramfs, the lab's dom0 scripts).
build_dom0_base() {
    local d=$LAB_BUILD/dom0-rootfs b n xenbin=$LAB_ROOT/usr/lib/xen-$XEN_VERSION/bin
    mk_busybox_rootfs "$d"
    for b in xl xenstored xenconsoled xen-init-dom0 xenconsole libxl-save-helper; do
        copy_elf "$xenbin/$b" "/usr/lib/xen-$XEN_VERSION/bin/$b" "$d"
    done
    copy_elf "$LAB_ROOT/usr/bin/xenstore" /usr/bin/xenstore "$d"   # multi-call on argv[0]
    for n in read write rm exists list ls chmod watch; do ln -s xenstore "$d/usr/bin/xenstore-$n"; done
    # libxl runs /etc/xen/scripts/{block,vif-bridge}: they need bash, flock and util-linux
    # losetup (busybox's versions are not enough for them)
    copy_elf "$(command -v bash)" /usr/bin/bash "$d"; ln -s ../usr/bin/bash "$d/bin/bash"
    copy_elf "$(command -v flock)" /usr/bin/flock "$d"
    copy_elf "$(command -v losetup)" /usr/sbin/losetup "$d"
    # glibc dlopen()s libgcc_s for pthread_cancel: without it xl aborts on a hotplug timeout
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$d/usr/lib/x86_64-linux-gnu/"
    mkdir -p "$d/etc/xen"; cp -a "$LAB_ROOT/etc/xen/scripts" "$d/etc/xen/"
    echo 'autoballoon="off"' > "$d/etc/xen/xl.conf"
    add_modules "$d" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback \
        xen-netback loop bridge dm-mod virtio_pci 9pnet_virtio 9p
    for b in "${LAB_OUR_BINS[@]}"; do copy_elf "$b" "/usr/local/bin/$(basename "$b")" "$d"; done
    for b in "${LAB_EXTRA_BINS[@]}"; do copy_elf "$LAB_ROOT$b" "$b" "$d"; done
    for f in "${LAB_EXTRA_DATA[@]}"; do
        [ -e "$LAB_ROOT$f" ] || lab_die "lab-data: $f is not in the unpacked packages"
        mkdir -p "$d$(dirname "$f")"; cp -a "$LAB_ROOT$f" "$d$f"
    done
    mkdir -p "$d/lab/guest" "$d/lab/scenarios" "$d/lab/files"
    cp "$LAB_VMLINUZ" "$d/lab/guest/vmlinuz"
    cp "$LAB_BUILD/guest.cpio.gz" "$d/lab/guest/initrd.gz"
    cp "$LAB_BUILD/initrd-rootdisk.gz" "$LAB_BUILD/rootfs.tar" "$d/lab/guest/"
    install -m 755 "$LAB_DIR/dom0/init" "$d/init"
    install -m 644 "$LAB_DIR/dom0/lib.sh" "$d/lab/lib.sh"
    install -m 755 "$LAB_DIR/dom0/stream-consoles.sh" "$d/lab/stream-consoles.sh"
    pack "$d" "$1"
}

# build_dom0_group OUT XENSTORED SCENARIO...: the small second archive a boot adds on top of
# the base (Linux unpacks concatenated cpio archives in order): the run list and scenarios.
build_dom0_group() {
    local out=$1 xenstored=$2 g=$LAB_BUILD/group-rootfs s src dst; shift 2
    rm -rf "$g"; mkdir -p "$g/lab/scenarios" "$g/lab/files"
    printf 'LAB_XENSTORED=%s\nLAB_XEN_VERSION=%s\n' "$xenstored" "$XEN_VERSION" > "$g/lab/config"
    : > "$g/lab/run-list"
    for s in "$@"; do
        install -m 755 "$LAB_DIR/scenarios/$s.sh" "$g/lab/scenarios/$s.sh"
        printf '%s %s\n' "$s" "$(scenario_timeout "$s")" >> "$g/lab/run-list"
        [ -f "$LAB_DIR/scenarios/$s.files" ] || continue
        while read -r src dst; do
            case $src in ''|'#'*) continue ;; esac
            [ -n "$dst" ] || dst=/lab/files/$(basename "$src")
            # build artefacts (target/...) live in cargo's target dir, wherever CARGO_TARGET_DIR puts it
            local from=$LAB_REPO/$src
            case $src in target/*) from=${CARGO_TARGET_DIR:-$LAB_REPO/target}/${src#target/} ;; esac
            [ -e "$from" ] || lab_die "scenario $s: $src (from $s.files, looked for at $from) does not exist; was it built?"
            mkdir -p "$g$(dirname "$dst")"; cp -aL "$from" "$g$dst"
        done < "$LAB_DIR/scenarios/$s.files"
    done
    pack "$g" "$out"
}

# build_rootdisk_guest: the pieces of a guest that boots like a distribution from an LVM root
# volume: /lab/guest/initrd-rootdisk.gz (mounts root= and switch_roots) and
# /lab/guest/rootfs.tar (the root filesystem dom0 puts on the volume; busybox init).
build_rootdisk_guest() {
    local i=$LAB_BUILD/rootdisk-initrd r=$LAB_BUILD/rootdisk-rootfs
    mk_busybox_rootfs "$i"
    add_modules "$i" xen-blkfront xen-netfront ext4 crc32c_generic
    install -m 755 "$LAB_DIR/guest/init-rootdisk" "$i/init"
    pack "$i" "$LAB_BUILD/initrd-rootdisk.gz"
    mk_busybox_rootfs "$r"
    rm -f "$r/sbin/init"; ln -s ../bin/busybox "$r/sbin/init"
    mkdir -p "$r/etc/init.d"
    install -m 755 "$LAB_DIR/guest/rootdisk/rcS" "$r/etc/init.d/rcS"
    install -m 755 "$LAB_DIR/guest/rootdisk/rcK" "$r/etc/init.d/rcK"
    install -m 644 "$LAB_DIR/guest/rootdisk/inittab" "$r/etc/inittab"
    (cd "$r" && tar --owner=0 --group=0 -cf "$LAB_BUILD/rootfs.tar" .)
}
