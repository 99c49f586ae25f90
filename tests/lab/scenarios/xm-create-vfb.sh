#!/bin/sh
# The PV framebuffer: with Debian's qemu-system-xen installed, `xm create` starts its qemu
# (/usr/libexec/xen-qemu-system-i386 -xen-domid D -xen-attach -machine xenpv -vnc ...) as the
# backend of the guest's vfb and vkbd, with the VNC display the config asks for (vncdisplay=1:
# TCP 5901 on 127.0.0.1, libxl's default listen address). The guest kernel's built-in
# xen-fbfront/xen-kbdfront connect to it. `xm destroy`, and in a second round Debian's
# `xl destroy` (which finds qemu's pid where libxl records it), leave no qemu and no nodes.
# First, a qemu that cannot start (a keymap it does not have) fails the create, naming its
# log, and leaves nothing behind. (Without qemu-system-xen the guest boots with a warning
# instead: xm-rs's host tests, create/vfb.rs, cover that.)
# lab-timeout: 720
# lab-packages: qemu-system-xen libfdt1 libglib2.0-0 libjpeg62-turbo libpixman-1-0 libspice-server1 libusb-1.0-0 libopus0 libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 liborc-0.4-0 liblz4-1 libsasl2-2 libssl3 libudev1 libunwind8 libdw1 libelf1 libffi8 libpcre2-8-0 libstdc++6
# lab-packages: qemu-system-data
# lab-data: /usr/share/qemu/keymaps
# lab-bins: /usr/libexec/xen-qemu-system-i386
# lab-expect: XM-VFB-QEMU-FAILURE-CLEAN
# lab-expect: XM-VFB-QEMU-RUNNING
# lab-expect: XM-VFB-VNC-LISTENING 5901
# lab-expect: XM-VFB-VNC-RFB-BANNER
# lab-expect: XM-VFB-BACKENDS-CONNECTED
# lab-expect: XM-VFB-XM-DESTROY-CLEAN
# lab-expect: XM-VFB-XL-DESTROY-CLEAN
. /lab/lib.sh

QEMU=/usr/libexec/xen-qemu-system-i386
NAME=vfbguest
LOG=/var/log/xen/qemu-dm-$NAME.log
[ -x "$QEMU" ] || fail "$QEMU is not in dom0 (lab-bins)"
command -v xm >/dev/null || fail "xm is not installed in dom0"

cat > /etc/xen/$NAME.cfg <<CFG
name    = "$NAME"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init panic=1 quiet lab.end=wait"
memory  = 128
vfb     = [ 'type=vnc, vncdisplay=1' ]
CFG

# every xenstore path but the (then empty) parents that stay once a domain's own directories
# below them are removed, as with xl
paths() {
    xenstore-ls -f / | sed 's/ = .*//' |
        grep -vxE '/libxl|/vm|/local/domain/0/(device-model|backend|backend/[a-z]+)' | sort
}
# qemu_procs: pids of live Xen qemu processes (a zombie's cmdline is empty)
qemu_procs() {
    for c in /proc/[0-9]*/cmdline; do
        { tr '\0' ' ' < "$c"; } 2>/dev/null | grep -q "^$QEMU " && { p=${c#/proc/}; echo "${p%/cmdline}"; }
    done
}
# vnc_listening: a socket listens on 127.0.0.1:5901 (hex 0100007F:170D, state 0A)
vnc_listening() { grep -q '^ *[0-9]*: 0100007F:170D 00000000:0000 0A ' /proc/net/tcp; }
# gone_clean WHAT DOMID: no domain, no qemu, no listening port, xenstore as before
gone_clean() {
    domain_gone_wait $NAME 30 || fail "$1: $NAME still there"
    i=0
    while [ -n "$(qemu_procs)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -z "$(qemu_procs)" ] || { ps; fail "$1: qemu still running: $(qemu_procs)"; }
    vnc_listening && fail "$1: port 5901 still listening"
    for p in /local/domain/0/device-model/$2 /local/domain/0/backend/vfb/$2 /local/domain/0/backend/vkbd/$2; do
        xenstore-exists "$p" 2>/dev/null && fail "$1: $p left"
    done
    paths > /tmp/vfb.paths.after
    diff /tmp/vfb.paths.before /tmp/vfb.paths.after || fail "$1: xenstore differs from before"
}

paths > /tmp/vfb.paths.before
[ -z "$(qemu_procs)" ] || fail "a qemu runs before the scenario"

# Round 0: a qemu that cannot start (the config names a keymap qemu does not have) fails the
# create with qemu's own reason and the log's name, and leaves nothing behind.
sed "s/vncdisplay=1'/vncdisplay=1, keymap=no-such-keymap'/" /etc/xen/$NAME.cfg > /etc/xen/$NAME-bad.cfg
grep -q no-such-keymap /etc/xen/$NAME-bad.cfg || fail "could not write the bad config"
if xm create /etc/xen/$NAME-bad.cfg > /tmp/vfb0.out 2>&1; then
    cat /tmp/vfb0.out; cat "$LOG"; ls /usr/share/qemu/keymaps 2>&1 | head -3
    fail "xm create succeeded with a qemu that cannot start"
fi
cat /tmp/vfb0.out
grep -q "$LOG" /tmp/vfb0.out || fail "the error does not name $LOG"
grep -qi keymap /tmp/vfb0.out || fail "the error does not carry qemu's reason"
sleep 1
[ -z "$(qemu_procs)" ] || fail "failed create left qemu running"
xl list | awk 'NR > 2 { exit 1 }' || fail "failed create left a domain"
paths > /tmp/vfb.paths.after
diff /tmp/vfb.paths.before /tmp/vfb.paths.after || fail "failed create left xenstore nodes"
echo "XM-VFB-QEMU-FAILURE-CLEAN"

# qemu's VNC server needs its default keymap (qemu-system-data, copied in by lab-data) and
# the loopback, where libxl's default VNC listen address (127.0.0.1) lives (dom0's /init)
[ -e /usr/share/qemu/keymaps/en-us ] || fail "qemu's keymaps are missing (lab-data)"
ip link show lo | grep -q UP || fail "lo is down"

for round in xm xl; do
    mark "vfb-create-$round"
    t0=$(now_ms)
    xm create /etc/xen/$NAME.cfg > /tmp/vfb.out 2>&1 || { cat /tmp/vfb.out; cat "$LOG"; fail "xm create returned $?"; }
    result "xm-create-vfb-$round-ms" $(( $(now_ms) - t0 ))
    cat /tmp/vfb.out
    grep -q Warning /tmp/vfb.out && fail "the framebuffer was not served: $(cat /tmp/vfb.out)"
    d=$(xl domid $NAME) || fail "no domain $NAME"
    pid=$(xenstore-read /local/domain/$d/image/device-model-pid) || fail "no device-model-pid"
    tr '\0' ' ' < /proc/$pid/cmdline | grep -q "^$QEMU -xen-domid $d .*-xen-attach.*-vnc 127.0.0.1:1,to=99.*-machine xenpv" ||
        fail "pid $pid is not our qemu: $(tr '\0' ' ' < /proc/$pid/cmdline)"
    [ "$(xenstore-read /local/domain/0/device-model/$d/state)" = running ] || fail "device-model state is not running"
    [ "$round" = xm ] && { echo "qemu: $(tr '\0' ' ' < /proc/$pid/cmdline)"; cat "$LOG"; }
    echo "XM-VFB-QEMU-RUNNING pid=$pid domid=$d"
    vnc_listening || { cat /proc/net/tcp; fail "nothing listens on 127.0.0.1:5901"; }
    [ "$(xenstore-read /local/domain/$d/console/vnc-port)" = 5901 ] || fail "console/vnc-port is not 5901"
    echo "XM-VFB-VNC-LISTENING 5901"
    banner=$(timeout 5 nc 127.0.0.1 5901 < /dev/null 2>/dev/null | head -c 12)
    case $banner in RFB\ 003.*) echo "XM-VFB-VNC-RFB-BANNER $banner" ;; *) fail "no RFB banner on 5901: '$banner'" ;; esac
    # the guest kernel's built-in xen-fbfront and xen-kbdfront connect to qemu's backends
    for dev in vfb vkbd; do
        be=/local/domain/0/backend/$dev/$d/0
        state_wait $be/state 4 120 || {
            xenstore-ls -f /local/domain/0/backend/$dev/$d; xenstore-ls -f /local/domain/$d/device/$dev
            fail "$dev backend not connected (state $(xenstore-read $be/state))"; }
    done
    echo "XM-VFB-BACKENDS-CONNECTED vfb+vkbd domid=$d"
    xl list
    if [ "$round" = xm ]; then
        xm destroy $NAME || fail "xm destroy returned $?"
        gone_clean "xm destroy" "$d"
        echo "XM-VFB-XM-DESTROY-CLEAN"
    else
        xl destroy $NAME || fail "xl destroy returned $?"
        gone_clean "xl destroy" "$d"
        echo "XM-VFB-XL-DESTROY-CLEAN"
    fi
done
