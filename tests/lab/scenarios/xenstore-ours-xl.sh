#!/bin/sh
# Debian's xl with OUR xenstored: `xl create` of a PV guest (Debian 6.1 kernel, the lab's busybox
# initramfs) with a file-backed disk and a bridged vif. Real blkfront/netfront in the guest
# find their backends through our daemon's ring transport (the guest's ring mapped via grant 1,
# dom0's kernel xenbus via /proc/xen/xsd_kva), xenconsoled finds the guest through
# @introduceDomain, and xl notices the guest's poweroff through @releaseDomain.
# The create is traced exactly as in xenstore-c-xl (same helper), so the two compare.
# lab-xenstored: ours
# lab-timeout: 240
# lab-expect: [xsours] GUEST-UP
# lab-expect: [xsours] GUEST-DISK-WRITE-OK
# lab-expect: [xsours] GUEST-NET-OK eth0 mac=00:16:3e:00:00:02
# lab-expect: [xsours] GUEST-PING-OK
# lab-expect: [xsours] GUEST-DONE
# lab-expect: DOM0-SEES-GUEST-DISK-WRITE
# lab-expect: XS-ours-DOMAIN-GONE
# lab-expect: XS-ours-NODES-CLEANED
. /lab/lib.sh
. /lab/files/xenstore-lab.sh

ps | grep '[x]enstored'
xs_xl_create_traced ours xsours 00:16:3e:00:00:02 || fail "xl create failed"
xs_guest_finish ours xsours
tail -20 /var/log/xen/xenstored-rs.log 2>/dev/null
