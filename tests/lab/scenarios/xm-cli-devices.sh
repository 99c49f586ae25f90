#!/bin/sh
# xm's vcpu, scheduler and device commands on a running busybox guest made by `xm create`:
# vcpu-list (checked against xl), vcpu-pin, vcpu-set (the guest unplugs vcpu 1; 2 again re-marks it),
# sched-credit (sched-credit2 on a credit2 host) set and read back, block-attach of a second
# file-backed disk (its backend reaches Connected, block-list shows it), block-detach,
# network-attach to xenbr0, network-list, network-detach; then xm destroy, and nothing is
# left: no backend in xenstore, no loop device.
# lab-timeout: 900
# lab-expect: [xmdev] GUEST-DONE
# lab-expect: XM-CLI-VCPU-LIST-OK
# lab-expect: XM-CLI-VCPU-PIN-OK
# lab-expect: XM-CLI-VCPU-SET-OK
# lab-expect: XM-CLI-SCHED-OK
# lab-expect: XM-CLI-BLOCK-ATTACH-OK
# lab-expect: XM-CLI-BLOCK-DETACH-OK
# lab-expect: XM-CLI-NETWORK-ATTACH-OK
# lab-expect: XM-CLI-NETWORK-DETACH-OK
# lab-expect: XM-CLI-DEVICES-CLEAN
. /lab/lib.sh

xs_exists() { xenstore-read "$1" >/dev/null 2>&1; }
# The backing files of every loop device, from sysfs (busybox's losetup shows the name the
# attacher recorded, which our loop devices leave empty).
loop_files() { cat /sys/block/loop*/loop/backing_file 2>/dev/null | sort; }

command -v xm >/dev/null || fail "xm is not installed in dom0"
loop_files > /tmp/loops.before
busybox_guest_cfg xmdev 00:16:3e:00:00:51
# two vcpus, and the guest stays up after its checks
sed -i -e 's/^vcpus .*/vcpus   = 2/' -e 's/lab.ping=10.99.0.1"/lab.ping=10.99.0.1 lab.end=wait"/' \
    /etc/xen/xmdev.cfg
cat /etc/xen/xmdev.cfg
xm create /etc/xen/xmdev.cfg || fail "xm create xmdev returned $?"
guest_wait xmdev GUEST-DONE 120 || fail "xmdev did not print GUEST-DONE"
domid=$(xm domid xmdev) || fail "xm domid xmdev"

# --- vcpu-list: xm's header, one row per vcpu, as many as xl shows
mark xm-cli-vcpu-list
xm vcpu-list xmdev | tee /tmp/vl || fail "xm vcpu-list returned $?"
xl vcpu-list xmdev
header='Name                                ID  VCPU   CPU State   Time(s) CPU Affinity'
[ "$(head -1 /tmp/vl)" = "$header" ] || fail "vcpu-list header differs from xm's"
[ "$(grep -c '^xmdev ' /tmp/vl)" = 2 ] || fail "vcpu-list does not show 2 vcpus"
[ "$(xl vcpu-list xmdev | grep -c '^xmdev ')" = 2 ] || fail "xl disagrees on the vcpu count"
awk '$1 == "xmdev" && $5 !~ /^[-r][-b]-$/ { bad = 1 } END { exit bad }' /tmp/vl ||
    fail "an online vcpu has a bad state column"
xm vcpu-list --json xmdev | grep -q '"vcpu": 1' || fail "vcpu-list --json lacks vcpu 1"
echo "XM-CLI-VCPU-LIST-OK"

# --- vcpu-pin: vcpu 1 to cpu 1, then everything back to any cpu; a cpu the host lacks is
# a usage error
mark xm-cli-vcpu-pin
xm vcpu-pin xmdev 1 1 || fail "xm vcpu-pin xmdev 1 1 returned $?"
xm vcpu-list xmdev | tee /tmp/vl
[ "$(awk '$1 == "xmdev" && $3 == 1 { print $NF }' /tmp/vl)" = 1 ] || fail "vcpu 1 not pinned to cpu 1"
xl vcpu-list xmdev | awk '$1 == "xmdev" && $3 == 1' | grep -q ' 1 / all' ||
    fail "xl does not see vcpu 1's hard affinity as 1"
xm vcpu-pin xmdev 0 0-1,^1 || fail "xm vcpu-pin with an exclusion returned $?"
[ "$(xm vcpu-list xmdev | awk '$1 == "xmdev" && $3 == 0 { print $NF }')" = 0 ] ||
    fail "0-1,^1 did not pin vcpu 0 to cpu 0"
xm vcpu-pin xmdev 0 99 2>/tmp/pin.err; rc=$?
cat /tmp/pin.err
[ $rc = 2 ] || fail "vcpu-pin to a missing cpu exited $rc, not 2"
grep -q "CPUS '99'" /tmp/pin.err || fail "vcpu-pin's error does not name the CPUS argument"
xm vcpu-pin xmdev all all || fail "xm vcpu-pin xmdev all all returned $?"
[ "$(xm vcpu-list xmdev | grep -c 'any cpu$')" = 2 ] || fail "vcpus not back to any cpu"
echo "XM-CLI-VCPU-PIN-OK"

# --- vcpu-set: the guest takes vcpu 1 offline (cpu/1/availability); setting 2 marks it
# available again (onlining a re-added cpu is left to the guest's userspace, udev, which the
# busybox guest does not have, so only the node is checked then, as for xl vcpu-set)
mark xm-cli-vcpu-set
vcpu1_state() { xm vcpu-list xmdev | awk '$1 == "xmdev" && $3 == 1 { print $5 }'; }
xm vcpu-set xmdev 1 || fail "xm vcpu-set xmdev 1 returned $?"
[ "$(xenstore-read /local/domain/$domid/cpu/1/availability)" = offline ] || fail "availability not offline"
t0=$(now_ms)
until [ "$(vcpu1_state)" = "--p" ]; do
    [ $(($(now_ms) - t0)) -ge 60000 ] && { xm vcpu-list xmdev; fail "the guest did not take vcpu 1 offline"; }
    sleep 0.5
done
result xm-cli-vcpu-offline-ms $(($(now_ms) - t0))
xm vcpu-list xmdev
xm vcpu-set xmdev 3 2>/tmp/set.err && fail "vcpu-set above the maximum succeeded"
cat /tmp/set.err
grep -q "greater than max vcpus" /tmp/set.err || fail "vcpu-set above the maximum: unclear error"
xm vcpu-set xmdev 2 || fail "xm vcpu-set xmdev 2 returned $?"
[ "$(xenstore-read /local/domain/$domid/cpu/1/availability)" = online ] || fail "availability not online"
[ "$(xenstore-read /local/domain/$domid/cpu/0/availability)" = online ] || fail "vcpu 0 not online"
xm vcpu-list xmdev
echo "XM-CLI-VCPU-SET-OK"

# --- the scheduler: weight and cap set, read back by xm and by xl
mark xm-cli-sched
sched=$(xl info | awk -F': *' '/^xen_scheduler/ { print $2 }')
echo "xen_scheduler: $sched"
case $sched in
    credit) cmd=sched-credit; other=sched-credit2 ;;
    credit2) cmd=sched-credit2; other=sched-credit ;;
    *) fail "unexpected scheduler $sched" ;;
esac
xm $cmd | tee /tmp/sc || fail "xm $cmd returned $?"
[ "$(head -1 /tmp/sc)" = 'Name                                ID Weight  Cap' ] || fail "$cmd header differs from xm's"
xm $cmd -d xmdev -w 512 -c 50 || fail "xm $cmd -w 512 -c 50 returned $?"
xm $cmd -d xmdev | tee /tmp/sc
[ "$(awk 'NR == 2 { print $1, $2, $3, $4 }' /tmp/sc)" = "xmdev $domid 512 50" ] || fail "$cmd did not read back 512 50"
xl $cmd -d xmdev | tee /tmp/xlsc
[ "$(awk 'NR == 2 { print $3, $4 }' /tmp/xlsc)" = "512 50" ] || fail "xl $cmd does not see 512 50"
xm $cmd -d xmdev -w 300 || fail "xm $cmd -w 300 returned $?"
[ "$(xm $cmd -d xmdev | awk 'NR == 2 { print $3, $4 }')" = "300 50" ] || fail "-w alone changed the cap"
xm $other 2>/tmp/other.err && fail "xm $other succeeded on a $sched host"
grep -q "Xen is running with the $sched scheduler" /tmp/other.err || fail "xm $other: unclear error"
echo "XM-CLI-SCHED-OK"

# --- block-attach of a second file-backed disk; the guest's blkfront connects it
mark xm-cli-block-attach
dd if=/dev/zero of=/var/lib/xen/xmdev-data.img bs=1M count=8 2>/dev/null
be=/local/domain/0/backend/vbd/$domid/51728
t0=$(now_ms)
xm block-attach xmdev file:/var/lib/xen/xmdev-data.img xvdb w || fail "xm block-attach returned $?"
result xm-cli-block-attach-ms $(($(now_ms) - t0))
[ "$(xenstore-read $be/state)" = 4 ] || fail "vbd 51728's backend is not Connected (4)"
xenstore-ls -f $be | sed -n '1,40p'
loop_files | grep -q xmdev-data.img || fail "no loop device for the attached image"
xm block-list xmdev | tee /tmp/bl
[ "$(head -1 /tmp/bl)" = 'Vdev  BE handle state evt-ch ring-ref BE-path' ] || fail "block-list header differs from xm's"
grep -q "^51728  0    0     4 .* $be" /tmp/bl || fail "block-list does not show xvdb connected"
awk '$1 == 51728 && ($5 < 0 || $6 < 0) { bad = 1 } END { exit bad }' /tmp/bl ||
    fail "block-list shows no event channel or ring for xvdb"
xl block-list xmdev | grep -q '^51728 ' || fail "xl block-list does not see xvdb"
xm block-list --json xmdev | grep -q '"devid": 51728' || fail "block-list --json lacks xvdb"
xm block-attach xmdev file:/var/lib/xen/xmdev-data.img xvdb w && fail "attaching xvdb twice succeeded"
echo "XM-CLI-BLOCK-ATTACH-OK"

mark xm-cli-block-detach
xm block-detach xmdev xvdb || fail "xm block-detach returned $?"
xs_exists $be && fail "vbd backend still in xenstore"
xs_exists /local/domain/$domid/device/vbd/51728 && fail "vbd frontend still in xenstore"
# blkback drops the device when its directory goes; the loop device clears itself then
t0=$(now_ms)
while loop_files | grep -q xmdev-data.img; do
    [ $(($(now_ms) - t0)) -ge 10000 ] && { loop_files; fail "the detached image's loop device was not released"; }
    sleep 0.2
done
xm block-list xmdev | grep -q '^51728' && fail "block-list still shows xvdb"
xm block-detach xmdev xvdb 2>/tmp/bd.err && fail "detaching xvdb twice succeeded"
grep -q "Device xvdb not connected" /tmp/bd.err || fail "second detach: unclear error"
echo "XM-CLI-BLOCK-DETACH-OK"

# --- network-attach: vif 1 on xenbr0, Connected, enslaved
mark xm-cli-network-attach
vbe=/local/domain/0/backend/vif/$domid/1
xm network-attach xmdev mac=00:16:3e:00:00:52 bridge=xenbr0 || fail "xm network-attach returned $?"
[ "$(xenstore-read $vbe/state)" = 4 ] || fail "vif 1's backend is not Connected (4)"
[ "$(xenstore-read $vbe/mac)" = 00:16:3e:00:00:52 ] || fail "vif 1 has the wrong MAC"
ls /sys/class/net/xenbr0/brif
[ -e /sys/class/net/xenbr0/brif/vif$domid.1 ] || fail "vif$domid.1 is not on xenbr0"
xm network-list xmdev | tee /tmp/nl
[ "$(head -1 /tmp/nl)" = 'Idx BE     MAC Addr.     handle state evt-ch tx-/rx-ring-ref BE-path' ] ||
    fail "network-list header differs from xm's"
grep -q '^1   0  00:16:3e:00:00:52    1     4 ' /tmp/nl || fail "network-list does not show vif 1 connected"
awk '$1 == 1 && ($6 < 0 || $7 ~ /^-1/) { bad = 1 } END { exit bad }' /tmp/nl ||
    fail "network-list shows no event channel or rings for vif 1"
xl network-list xmdev | grep -q '00:16:3e:00:00:52' || fail "xl network-list does not see vif 1"
echo "XM-CLI-NETWORK-ATTACH-OK"

mark xm-cli-network-detach
xm network-detach xmdev 00:16:3e:00:00:52 || fail "xm network-detach returned $?"
xs_exists $vbe && fail "vif 1 backend still in xenstore"
xs_exists /local/domain/$domid/device/vif/1 && fail "vif 1 frontend still in xenstore"
t0=$(now_ms)
while [ -e /sys/class/net/vif$domid.1 ]; do
    [ $(($(now_ms) - t0)) -ge 10000 ] && fail "vif$domid.1 still exists"
    sleep 0.1
done
[ "$(xm network-list xmdev | grep -c '^[0-9]')" = 1 ] || fail "network-list does not show only vif 0"
echo "XM-CLI-NETWORK-DETACH-OK"

# --- destroy: nothing left
xm destroy xmdev || fail "xm destroy xmdev returned $?"
domain_gone_wait xmdev 20 || fail "xmdev still there after xm destroy"
sleep 1
for kind in vbd vif console; do
    xenstore-list /local/domain/0/backend/$kind 2>/dev/null | grep -qx "$domid" &&
        fail "/local/domain/0/backend/$kind/$domid left in xenstore"
done
xs_exists /local/domain/$domid && fail "/local/domain/$domid left"
xs_exists /libxl/$domid && fail "/libxl/$domid left"
loop_files > /tmp/loops.after
cmp -s /tmp/loops.before /tmp/loops.after || { cat /tmp/loops.after; fail "loop devices left"; }
rm -f /var/lib/xen/xmdev-data.img /var/lib/xen/xmdev.img
echo "XM-CLI-DEVICES-CLEAN"
