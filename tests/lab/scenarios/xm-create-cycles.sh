#!/bin/sh
# 20 create/destroy cycles of a guest with a file: disk (a loop device we attach) and a vif on
# xenbr0, all through `xm`: afterwards xenstore holds exactly the nodes it held before, no
# loop device and no vif netdev is left, and the bridge has the ports it had.
# lab-timeout: 600
# lab-expect: XM-CYCLES-DONE 20
# lab-expect: XM-CYCLES-NO-LEAK
. /lab/lib.sh

CYCLES=20
busybox_guest_cfg cycler 00:16:3e:00:00:71
snapshot() {  # snapshot FILE: what must come back to where it was
    {
        echo "# xenstore"; xenstore-ls -f / | sed 's/ = .*//' | grep -v '^/local/domain/0/\(memory\|device-model\)' | sort
        echo "# loops"; /usr/sbin/losetup -a
        echo "# netdevs"; ls /sys/class/net | sort
        echo "# bridge ports"; ls /sys/class/net/xenbr0/brif 2>/dev/null | sort
    } > "$1"
}
snapshot /tmp/cycles.before
result xm-cycles-xenstore-nodes-before "$(xenstore-ls -f / | wc -l)"
result xm-cycles-loops-before "$(/usr/sbin/losetup -a | wc -l)"
mark xm-cycles-start
t0=$(now_ms)
i=1
while [ $i -le $CYCLES ]; do
    xm create -q /etc/xen/cycler.cfg || fail "cycle $i: xm create returned $?"
    xm destroy cycler || fail "cycle $i: xm destroy returned $?"
    domain_gone_wait cycler 30 || fail "cycle $i: cycler still there"
    echo "cycle $i done after $(( $(now_ms) - t0 )) ms"
    i=$((i + 1))
done
mark xm-cycles-end
echo "XM-CYCLES-DONE $CYCLES"
# Backends finish tearing down asynchronously (netback removes vifD.N after the domain dies).
n=0
while :; do
    snapshot /tmp/cycles.after
    cmp -s /tmp/cycles.before /tmp/cycles.after && break
    n=$((n + 1))
    [ $n -ge 50 ] && { diff /tmp/cycles.before /tmp/cycles.after; fail "something leaked over $CYCLES cycles"; }
    sleep 0.2
done
result xm-cycles-xenstore-nodes-after "$(xenstore-ls -f / | wc -l)"
result xm-cycles-loops-after "$(/usr/sbin/losetup -a | wc -l)"
echo "XM-CYCLES-NO-LEAK"
