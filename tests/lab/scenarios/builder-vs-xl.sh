#!/bin/sh
# Build time of the same guest (Debian 6.1 bzImage with an xz payload, the busybox initramfs,
# 128 MiB, no devices) through our builder (`pv-boot create`) and Debian's `xl create`, in
# the same boot, alternating so neither gets a quieter machine. Measured in dom0 from the
# command's start to its return (both return with the guest unpaused) and, for the first
# runs, to GUEST-UP on the guest's console. Ours is measured cold (kernel decompressed) and
# warm (decompressed kernel from pv-boot's cache, as a second boot of the same kernel is).
# lab-timeout: 480
# lab-expect: [cmpxl1] GUEST-UP
# lab-expect: [cmpours1] GUEST-UP
# lab-expect: [cmpwarm] GUEST-UP
# lab-expect: BUILDER-VS-XL-DONE
. /lab/lib.sh

CMDLINE="console=hvc0 rdinit=/init panic=1 quiet lab.end=poweroff"
# The decompressed kernel (~65 MB) needs room: dom0's root filesystem has little.
CACHE=/tmp/builder-vs-xl-cache
mkdir -p "$CACHE"
mount -t tmpfs -o size=96m,mode=0700 builder-cache "$CACHE" || fail "cannot mount a tmpfs for the kernel cache"
# Warm the page cache for both, so neither pays for the first read of the kernel.
cat /lab/guest/vmlinuz /lab/guest/initrd.gz > /dev/null

xl_cfg() {
    cat > "/etc/xen/$1.cfg" <<CFG
name    = "$1"
type    = "pv"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "$CMDLINE"
memory  = 128
vcpus   = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

# xl_run NAME WAIT_UP: xl create; records NAME-create-ms (and -to-guest-up-ms).
xl_run() {
    xl_cfg "$1"
    mark "$1-start"
    t0=$(now_ms)
    xl create "/etc/xen/$1.cfg" || fail "xl create $1 returned $?"
    t1=$(now_ms)
    result "$1-xl-create-ms" $((t1 - t0))
    if [ "$2" = wait ]; then
        guest_wait "$1" GUEST-UP 120 || fail "$1 (xl) did not reach GUEST-UP"
        result "$1-xl-create-to-guest-up-ms" $(($(now_ms) - t0))
        guest_wait "$1" GUEST-DONE 60 || fail "$1 (xl) did not finish"
    fi
    xl destroy "$1" 2>/dev/null
    domain_gone_wait "$1" 30 || fail "$1 still there"
}

# ours_run NAME WAIT_UP PV_BOOT_OPTIONS...: pv-boot create; records NAME-create-ms and
# pv-boot's own parse/build/total split.
ours_run() {
    name=$1 wait=$2; shift 2
    mark "$name-start"
    t0=$(now_ms)
    out=$(pv-boot create --kernel /lab/guest/vmlinuz --ramdisk /lab/guest/initrd.gz \
        --memory 128 --name "$name" --cmdline "$CMDLINE" "$@") || fail "pv-boot create $name returned $?"
    t1=$(now_ms)
    echo "$out"
    result "$name-ours-create-ms" $((t1 - t0))
    for kv in parse_ms build_ms total_ms kernel_cache; do
        result "$name-ours-$kv" "$(echo "$out" | tr ' ' '\n' | sed -n "s/^$kv=//p")"
    done
    if [ "$wait" = wait ]; then
        guest_wait "$name" GUEST-UP 120 || fail "$name (ours) did not reach GUEST-UP"
        result "$name-ours-create-to-guest-up-ms" $(($(now_ms) - t0))
        guest_wait "$name" GUEST-DONE 60 || fail "$name (ours) did not finish"
    fi
    pv-boot destroy "$name" || fail "pv-boot destroy $name returned $?"
    domain_gone_wait "$name" 20 || fail "$name still there"
}

xl_run cmpxl1 wait
ours_run cmpours1 wait --kernel-cache "$CACHE"
xl_run cmpxl2 nowait
ours_run cmpours2 nowait
ours_run cmpwarm wait --kernel-cache "$CACHE"
umount "$CACHE"
xl list
echo "BUILDER-VS-XL-DONE"
