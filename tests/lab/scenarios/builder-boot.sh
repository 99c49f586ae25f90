#!/bin/sh
# Our own PV domain builder on real Xen, without libxl: `pv-boot` (domain-builder's bin) parses
# the kernel, creates and lays out the domain through libxenctrl, writes the console/store
# xenstore entries, introduces the domain to Debian's xenstored and unpauses it.
# 1. tiny-pv: checks its start_info, prints its command line, reads its name from xenstore.
# 2. Debian's 6.1 bzImage (xz payload) with the lab's busybox initramfs reaches /init.
# Both are then destroyed by `pv-boot destroy` and `xl list` shows only dom0.
# lab-timeout: 200
# lab-expect: [pvtiny] TINYPV-UP
# lab-expect: [pvtiny] TINYPV-STARTINFO-OK
# lab-expect: [pvtiny] TINYPV-CMDLINE hello-from-pv-boot
# lab-expect: [pvtiny] TINYPV-NAME pvtiny
# lab-expect: [pvtiny] TINYPV-DONE poweroff
# lab-expect: BUILDER-TINYPV-GONE
# lab-expect: [pvdeb] GUEST-UP
# lab-expect: [pvdeb] GUEST-DONE
# lab-expect: BUILDER-DEBIAN-GONE
# lab-expect: BUILDER-XL-LIST-ONLY-DOM0
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (builder-boot.files copies target/guests/tiny-pv.elf)"
command -v pv-boot >/dev/null || fail "pv-boot is not installed in dom0"

# destroy_and_check NAME MARKER: pv-boot destroys NAME; it must vanish from Xen and xenstore.
destroy_and_check() {
    pv-boot destroy "$1" || fail "pv-boot destroy $1 returned $?"
    domain_gone_wait "$1" 20 || fail "$1 still listed after pv-boot destroy"
    xl list
    echo "$2"
}

mark builder-tinypv-start
t0=$(now_ms)
pv-boot -v create --kernel "$IMAGE" --memory 32 --name pvtiny --cmdline "hello-from-pv-boot" \
    || fail "pv-boot create pvtiny returned $?"
t1=$(now_ms)
result builder-tinypv-create-ms $((t1 - t0))
xl list
xenstore-ls -f /local/domain/$(xl domid pvtiny) | head -40
guest_wait pvtiny "TINYPV-DONE" 30 || fail "tiny-pv did not print TINYPV-DONE"
t2=$(now_ms)
result builder-tinypv-create-to-done-ms $((t2 - t0))
# It powered itself off; nobody else reaps it.
i=0
while [ $i -lt 50 ] && ! xl list pvtiny 2>/dev/null | grep -q ' s-\|--s\|s---'; do sleep 0.1; i=$((i + 1)); done
xl list pvtiny
destroy_and_check pvtiny BUILDER-TINYPV-GONE

mark builder-debian-start
t0=$(now_ms)
pv-boot -v create --kernel /lab/guest/vmlinuz --ramdisk /lab/guest/initrd.gz --memory 128 \
    --name pvdeb --cmdline "console=hvc0 rdinit=/init panic=1 quiet lab.end=poweroff" \
    || fail "pv-boot create pvdeb returned $?"
t1=$(now_ms)
result builder-debian-create-ms $((t1 - t0))
guest_wait pvdeb "GUEST-UP" 120 || fail "Debian guest did not reach /init (GUEST-UP)"
t2=$(now_ms)
result builder-debian-create-to-guest-up-ms $((t2 - t0))
guest_wait pvdeb "GUEST-DONE" 60 || fail "Debian guest did not print GUEST-DONE"
sleep 1
destroy_and_check pvdeb BUILDER-DEBIAN-GONE

if [ "$(xl list | tail -n +2 | wc -l)" = 1 ] && xl list | grep -q '^Domain-0'; then
    echo "BUILDER-XL-LIST-ONLY-DOM0"
else
    xl list
    fail "domains left behind"
fi
for d in $(xenstore-list /local/domain); do
    [ "$d" = 0 ] || fail "xenstore still has /local/domain/$d"
done
