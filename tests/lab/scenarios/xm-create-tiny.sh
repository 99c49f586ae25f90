#!/bin/sh
# `xm create` (our builder + our xenstore layout, no libxl) boots the tiny-pv guest from an
# xm-syntax config: it prints its command line and reads its name from xenstore; `xl list`
# shows it while it runs; `xm destroy` then leaves nothing in Xen or xenstore. A second config
# with a vif on a bridge that does not exist must fail and leave nothing behind either. Last,
# `xm create -c` attaches the console: the guest's output reaches xm's stdout.
# lab-timeout: 180
# lab-expect: [xmtiny] TINYPV-UP
# lab-expect: [xmtiny] TINYPV-CMDLINE hello-from-xm
# lab-expect: [xmtiny] TINYPV-NAME xmtiny
# lab-expect: [xmtiny] TINYPV-DONE poweroff
# lab-expect: XM-CREATE-TINY-XL-LIST-OK
# lab-expect: XM-CREATE-TINY-CLEAN
# lab-expect: XM-CREATE-DUPLICATE-REFUSED
# lab-expect: XM-CREATE-NOBRIDGE-REFUSED
# lab-expect: XM-CREATE-NOBRIDGE-CLEAN
# lab-expect: XM-CREATE-CONSOLE-OK
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (xm-create-tiny.files copies target/guests/tiny-pv.elf)"
command -v xm >/dev/null || fail "xm is not installed in dom0"

# only_dom0_left WHAT: Xen and xenstore know no domain but dom0.
only_dom0_left() {
    n=$(xl list | awk 'NR > 1' | wc -l)
    [ "$n" = 1 ] || { xl list; fail "$1: domains left: $n"; }
    doms=$(xenstore-list /local/domain | tr '\n' ' ')
    [ "$doms" = "0 " ] || fail "$1: /local/domain still has: $doms"
    for kind in vbd vif console; do
        left=$(xenstore-list /local/domain/0/backend/$kind 2>/dev/null | tr '\n' ' ')
        [ -z "$left" ] || fail "$1: backend/$kind still has: $left"
    done
    [ -z "$(xenstore-list /libxl 2>/dev/null)" ] || { xenstore-ls -f /libxl; fail "$1: /libxl not empty"; }
    [ -z "$(xenstore-list /vm 2>/dev/null)" ] || fail "$1: /vm not empty"
}

cat > /etc/xen/xmtiny.cfg <<CFG
# xm syntax (Python): kernel, memory, name, extra
kernel = "$IMAGE"
memory = 32
name = "xmtiny"
vcpus = 1
extra = 'hello-from-xm'
on_poweroff = 'destroy'
CFG

mark xm-create-tiny-start
t0=$(now_ms)
xm create /etc/xen/xmtiny.cfg || fail "xm create xmtiny returned $?"
t1=$(now_ms)
result xm-create-tiny-ms $((t1 - t0))
xl list
xl list xmtiny >/dev/null || fail "xl list does not show xmtiny"
echo "XM-CREATE-TINY-XL-LIST-OK"
xenstore-ls -f /local/domain/$(xl domid xmtiny) | head -60
xm create /etc/xen/xmtiny.cfg 2>/tmp/dup.err && fail "a second xm create xmtiny succeeded"
cat /tmp/dup.err
grep -q "already exists" /tmp/dup.err && echo "XM-CREATE-DUPLICATE-REFUSED"
guest_wait xmtiny TINYPV-DONE 30 || fail "xmtiny did not print TINYPV-DONE"
# no lifecycle daemon yet: the powered-off domain stays until destroyed
xm destroy xmtiny || fail "xm destroy xmtiny returned $?"
domain_gone_wait xmtiny 20 || fail "xmtiny still there after xm destroy"
only_dom0_left "after xmtiny"
echo "XM-CREATE-TINY-CLEAN"

# --- a vif on a missing bridge: refused, nothing left ----------------------------------------
cat > /etc/xen/xmnobr.cfg <<CFG
kernel = "$IMAGE"
memory = 32
name = "xmnobr"
vif = [ 'bridge=nosuchbr0' ]
CFG
losetup -a > /tmp/loops.before
xm create /etc/xen/xmnobr.cfg 2>/tmp/nobr.err && fail "xm create with a missing bridge succeeded"
cat /tmp/nobr.err
grep -q "nosuchbr0" /tmp/nobr.err && echo "XM-CREATE-NOBRIDGE-REFUSED"
sleep 1
only_dom0_left "after the failed create"
losetup -a > /tmp/loops.after
cmp -s /tmp/loops.before /tmp/loops.after || fail "loop devices changed"
echo "XM-CREATE-NOBRIDGE-CLEAN"

# --- -c: the console on xm's own stdout (input is not a terminal; SIGTERM detaches) ----------
timeout -s TERM 20 xm create -c /etc/xen/xmtiny.cfg </dev/null >/tmp/console.out 2>/tmp/console.err
echo "xm create -c exited with $?"
cat /tmp/console.err
grep -q "TINYPV-NAME xmtiny" /tmp/console.out || { cat /tmp/console.out; fail "xm create -c did not show the guest's console"; }
grep -q "Started domain" /tmp/console.out && fail "xm create -c printed more than the console"
echo "XM-CREATE-CONSOLE-OK"
xm destroy xmtiny || fail "xm destroy xmtiny returned $?"
domain_gone_wait xmtiny 20 || fail "xmtiny still there after xm destroy"
only_dom0_left "after xm create -c"
