#!/bin/sh
# `xm create` boots the lab's busybox guest (Debian 6.1 kernel) with a file: disk on a loop
# device we attach and a vif we enslave to xenbr0 over rtnetlink: the guest writes its disk
# and pings dom0. A missing disk image then fails cleanly, and nothing is left behind:
# no domain, no xenstore nodes, no loop device.
# lab-timeout: 200
# lab-expect: [xmbusy] GUEST-UP
# lab-expect: [xmbusy] GUEST-DISK-OK
# lab-expect: [xmbusy] GUEST-PING-OK
# lab-expect: [xmbusy] GUEST-DONE
# lab-expect: XM-CREATE-BUSYBOX-CLEAN
# lab-expect: XM-CREATE-BADDISK-CLEAN
. /lab/lib.sh

command -v xm >/dev/null || fail "xm is not installed in dom0"
losetup -a > /tmp/loops.before
busybox_guest_cfg xmbusy 00:16:3e:00:00:42
cat /etc/xen/xmbusy.cfg
mark xm-create-busybox-start
t0=$(now_ms)
xm create /etc/xen/xmbusy.cfg || fail "xm create xmbusy returned $?"
t1=$(now_ms)
result xm-create-busybox-ms $((t1 - t0))
xl list
losetup -a
ip link show master xenbr0 2>/dev/null || brctl show 2>/dev/null
guest_wait xmbusy GUEST-DONE 90 || fail "xmbusy did not print GUEST-DONE"
xm destroy xmbusy || fail "xm destroy xmbusy returned $?"
domain_gone_wait xmbusy 20 || fail "xmbusy still there after xm destroy"
sleep 1
[ -z "$(xenstore-list /local/domain | grep -v '^0$')" ] || fail "domains left in xenstore"
losetup -a > /tmp/loops.after
cmp -s /tmp/loops.before /tmp/loops.after || { cat /tmp/loops.after; fail "loop devices left"; }
echo "XM-CREATE-BUSYBOX-CLEAN"

sed -i 's|/var/lib/xen/xmbusy.img|/var/lib/xen/no-such.img|' /etc/xen/xmbusy.cfg
xm create /etc/xen/xmbusy.cfg 2>/tmp/bad.err && fail "xm create with a missing image succeeded"
cat /tmp/bad.err
sleep 1
[ -z "$(xenstore-list /local/domain | grep -v '^0$')" ] || fail "domains left after the failed create"
xl list | awk 'NR > 2 { exit 1 }' || fail "xl list shows a leftover domain"
losetup -a > /tmp/loops.after
cmp -s /tmp/loops.before /tmp/loops.after || fail "loop devices left after the failed create"
echo "XM-CREATE-BADDISK-CLEAN"
