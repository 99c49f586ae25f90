#!/bin/sh
# Debian's xl with OUR xenstored: `xl create` of a PV guest (Debian 6.1 kernel, the lab's busybox
# initramfs) with a file-backed disk and a bridged vif. Real blkfront/netfront in the guest
# find their backends through our daemon's ring transport (the guest's ring mapped via grant 1,
# dom0's kernel xenbus via /proc/xen/xsd_kva), xenconsoled finds the guest through
# @introduceDomain, and xl notices the guest's poweroff through @releaseDomain.
# lab-xenstored: ours
# lab-timeout: 180
# lab-expect: [xsours] GUEST-UP
# lab-expect: [xsours] GUEST-DISK-WRITE-OK
# lab-expect: [xsours] GUEST-NET-OK eth0 mac=00:16:3e:00:00:02
# lab-expect: [xsours] GUEST-PING-OK
# lab-expect: [xsours] GUEST-DONE
# lab-expect: DOM0-SEES-GUEST-DISK-WRITE
# lab-expect: XS-OURS-DOMAIN-GONE
# lab-expect: XS-OURS-NODES-CLEANED
. /lab/lib.sh

busybox_guest_cfg xsours 00:16:3e:00:00:02
ps | grep '[x]enstored'
mark xl-create-start
t0=$(now_ms)
# -vvv straight to the console: libxl's progress lines get serial-log timestamps, to see
# where create time goes; a sampler shows what uses dom0's CPUs meanwhile.
xspid=$(cat /run/xenstored.pid)
echo "xenstored-rs cpu ticks before: $(cut -d' ' -f14,15 /proc/$xspid/stat)"
( while :; do sleep 4; echo "--- top"; top -b -n1 | head -10; done ) & sampler=$!
timeout 150 xl -vvv create /etc/xen/xsours.cfg; rc=$?
kill $sampler 2>/dev/null
echo "xenstored-rs cpu ticks after: $(cut -d' ' -f14,15 /proc/$xspid/stat)"
dmesg | tail -15
[ $rc = 0 ] || fail "xl create returned $rc"
t1=$(now_ms)
mark xl-create-returned
result xs-ours-xl-create-disk-vif-ms $((t1 - t0))
domid=$(xl domid xsours)
xl list
xenstore-ls -f /local/domain/$domid | head -40
guest_wait xsours GUEST-DONE 120 || fail "guest did not print GUEST-DONE"
t2=$(now_ms)
result xs-ours-xl-create-to-guest-done-ms $((t2 - t0))
domain_gone_wait xsours 60 || fail "guest still there 60 s after GUEST-DONE"
echo "XS-OURS-DOMAIN-GONE"
if guest_wrote_disk xsours; then
    echo "DOM0-SEES-GUEST-DISK-WRITE"
else
    fail "dom0 does not see the guest's write on xsours.img"
fi
sleep 1
if xenstore-exists /local/domain/$domid; then
    xenstore-ls -f /local/domain/$domid | head; fail "nodes of dead domain $domid left behind"
fi
echo "XS-OURS-NODES-CLEANED"
tail -20 /var/log/xen/xenstored-rs.log 2>/dev/null
