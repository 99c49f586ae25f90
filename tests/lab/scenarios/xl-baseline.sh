#!/bin/sh
# The peer every later benchmark compares against: Debian's `xl create` of a PV guest (the
# Debian 6.1 kernel, the lab's busybox initramfs as /init) with a file-backed disk and a
# bridged vif. The guest writes to its disk (dom0 reads it back) and pings dom0 over xenbr0.
# lab-timeout: 300
# lab-expect: [xlbase] GUEST-UP
# lab-expect: [xlbase] GUEST-DISK-WRITE-OK
# lab-expect: [xlbase] GUEST-NET-OK eth0 mac=00:16:3e:00:00:01
# lab-expect: [xlbase] GUEST-PING-OK
# lab-expect: [xlbase] GUEST-DONE
# lab-expect: DOM0-SEES-GUEST-DISK-WRITE
# lab-expect: XL-BASELINE-DOMAIN-GONE
. /lab/lib.sh

busybox_guest_cfg xlbase 00:16:3e:00:00:01
xl info | grep -E '^(xen_version|total_memory|free_memory|nr_cpus)'
mark xl-create-start
t0=$(now_ms)
xl create /etc/xen/xlbase.cfg || fail "xl create returned $?"
t1=$(now_ms)
mark xl-create-returned
result xl-create-disk-vif-ms $((t1 - t0))
xl list
guest_wait xlbase GUEST-DONE 120 || fail "guest did not print GUEST-DONE"
t2=$(now_ms)
result xl-create-to-guest-done-ms $((t2 - t0))
domain_gone_wait xlbase 60 || fail "guest still there 60 s after GUEST-DONE"
echo "XL-BASELINE-DOMAIN-GONE"
if guest_wrote_disk xlbase; then
    echo "DOM0-SEES-GUEST-DISK-WRITE"
else
    fail "dom0 does not see the guest's write on xlbase.img"
fi
