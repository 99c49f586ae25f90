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

dd if=/dev/zero of=/var/lib/xen/xsours.img bs=1M count=16 2>/dev/null
cat > /etc/xen/xsours.cfg <<CFG
name    = "xsours"
type    = "pv"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init panic=1 quiet lab.disk=xvda lab.net=10.99.0.2/24 lab.ping=10.99.0.1"
memory  = 128
vcpus   = 1
on_crash = "destroy"
disk    = [ 'file:/var/lib/xen/xsours.img,xvda,w' ]
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:00:02' ]
CFG
ps | grep '[x]enstored'
mark xl-create-start
t0=$(now_ms)
# -vvv: libxl's progress lines get serial-log timestamps, to see where create time goes.
{ timeout 150 xl -vvv create /etc/xen/xsours.cfg 2>&1; echo "XL-CREATE-RC $?"; } | grep -v '^ *$' | tee /tmp/xl-create.log
grep -q 'XL-CREATE-RC 0' /tmp/xl-create.log || fail "xl create failed"
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
if head -c 30 /var/lib/xen/xsours.img | grep -q XM-RS-LAB-WROTE-THIS-FROM-DOMU; then
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
