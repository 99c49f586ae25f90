#!/bin/sh
# The lifecycle daemon (`xm daemon`) on real Xen applies each domain's on_* action:
# - tiny-pv with tinypv.reboot reboots itself at once, every boot: under on_reboot='restart'
#   it comes back with the same name (each incarnation prints the name it reads from
#   xenstore) and a new domid, until the restart-storm damping (--storm-deaths 3) stops it and
#   the event log says so;
# - tiny-pv (tinypv.block) with a file: disk and a vif on xenbr0, asked to power off
#   (`xm shutdown`), is destroyed under on_poweroff='destroy': no domain, no backend directory,
#   no loop device, no vif, no record is left;
# - tiny-pv with tinypv.crash under on_crash='preserve' stays, crashed ('c' in xm list and
#   xl list), until `xm destroy`, which also drops its record.
# A second daemon is refused while one runs.
# lab-timeout: 300
# lab-expect: DAEMON-REFUSES-SECOND
# lab-expect: [stormy] TINYPV-NAME stormy
# lab-expect: DAEMON-REBOOT-RESTARTED
# lab-expect: DAEMON-STORM-STOPPED
# lab-expect: [poff] TINYPV-SHUTDOWN-REQUEST poweroff
# lab-expect: DAEMON-POWEROFF-CLEAN
# lab-expect: DAEMON-CRASH-PRESERVED
# lab-expect: DAEMON-DESTROY-DROPS-RECORD
# lab-expect: DAEMON-COREDUMP-WRITTEN
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (daemon-actions.files copies target/guests/tiny-pv.elf)"
command -v xm >/dev/null || fail "xm is not installed in dom0"
export XM_STATE_DIR=/var/lib/xm-rs-lab
rm -rf "$XM_STATE_DIR"
daemon_scenario /tmp/xm-daemon-actions.log


start_daemon --storm-deaths 3 --storm-window 120
echo "daemon pid $DPID"
xm daemon --foreground 2>/tmp/second.err && fail "a second daemon ran"
cat /tmp/second.err
grep -q "another xm daemon is running" /tmp/second.err || fail "the second daemon's refusal is unclear"
echo "DAEMON-REFUSES-SECOND"

# --- 1. a guest that reboots itself comes back; 2. its restart storm is stopped ----------
tiny_pv_cfg stormy reboot 'on_reboot = "restart"'
mark daemon-reboot-start
xm create -q /etc/xen/stormy.cfg || fail "xm create stormy returned $?"
d1=$(xm domid stormy 2>/dev/null) || d1="(gone already)"
echo "stormy started as domain $d1"
wait_log stormy "restart storm" 90 || fail "the storm of stormy was not stopped"
mark daemon-storm-stopped
domain_gone_wait stormy 30 || fail "stormy still there after the storm"
flush_consoles
xm log stormy
# Each restart names the dying domid and its successor: new domids, one after the other.
xm log stormy | sed -n 's/.*stormy (id \([0-9]*\)).*restarted as domain \([0-9]*\)$/\1 \2/p' > /tmp/stormy.ids
cat /tmp/stormy.ids
restarts=$(wc -l < /tmp/stormy.ids)
result daemon-storm-restarts "$restarts"
[ "$restarts" = 2 ] || fail "stormy was restarted $restarts times, expected 2 before the third death stopped it"
while read -r old new; do
    [ "$new" != "$old" ] || fail "a restart kept domid $old"
done < /tmp/stormy.ids
names=$(grep -c "TINYPV-NAME stormy" /var/log/xen/console/guest-stormy.log)
echo "console of stormy: TINYPV-NAME stormy printed $names times"
[ "$names" -ge 3 ] || fail "expected 3 incarnations of stormy to read their name, saw $names"
echo "DAEMON-REBOOT-RESTARTED stormy domids: $(tr '\n' ' ' < /tmp/stormy.ids)"
echo "DAEMON-STORM-STOPPED after $restarts restarts"

# --- 3. poweroff -> destroy leaves nothing --------------------------------------------------
loops_before=$(/usr/sbin/losetup -a | wc -l)
dd if=/dev/zero of=/var/lib/xen/poff.img bs=1M count=8 2>/dev/null
tiny_pv_cfg poff block "disk   = [ 'file:/var/lib/xen/poff.img,xvda,w' ]" \
    "vif    = [ 'bridge=xenbr0,mac=00:16:3e:00:00:81' ]" 'on_poweroff = "destroy"'
xm create -q /etc/xen/poff.cfg || fail "xm create poff returned $?"
pd=$(xm domid poff)
echo "poff is domain $pd; loops: $(/usr/sbin/losetup -a | wc -l) (before: $loops_before)"
xenstore-ls -f "/local/domain/0/backend/vbd/$pd" | head -5
guest_wait poff TINYPV-BLOCKING 30 || fail "poff did not block"
xm shutdown poff || fail "xm shutdown poff returned $?"
domain_gone_wait poff 60 || fail "poff was not destroyed after powering off"
wait_log poff "poweroff -> destroy: destroyed" 30 || fail "no poweroff event for poff"
n=0
while :; do
    left=""
    for kind in vbd vif console; do
        xenstore-list "/local/domain/0/backend/$kind/$pd" >/dev/null 2>&1 && left="$left backend/$kind/$pd"
    done
    xenstore-list "/local/domain/$pd" >/dev/null 2>&1 && left="$left /local/domain/$pd"
    xenstore-list "/libxl/$pd" >/dev/null 2>&1 && left="$left /libxl/$pd"
    [ "$(/usr/sbin/losetup -a | wc -l)" = "$loops_before" ] || left="$left loop-devices"
    [ -e "/sys/class/net/vif$pd.0" ] && left="$left vif$pd.0"
    [ -z "$left" ] && break
    n=$((n + 1))
    [ $n -ge 50 ] && { /usr/sbin/losetup -a; fail "left behind by poff:$left"; }
    sleep 0.2
done
xl list
ls "$XM_STATE_DIR/domains"
[ -z "$(ls "$XM_STATE_DIR/domains")" ] || fail "a record is left: $(ls "$XM_STATE_DIR/domains")"
xm log poff
echo "DAEMON-POWEROFF-CLEAN"

# --- 4. crash -> preserve ------------------------------------------------------------------
tiny_pv_cfg crasher crash 'on_crash = "preserve"'
xm create -q /etc/xen/crasher.cfg || fail "xm create crasher returned $?"
wait_log crasher "crash -> preserve" 60 || fail "no crash event for crasher"
sleep 2
xm list crasher || fail "crasher is gone"
state=$(xm list crasher | awk 'NR == 2 { print $5 }')
xstate=$(xl list crasher | awk 'NR == 2 { print $5 }')
echo "crasher: xm state $state, xl state $xstate"
case "$state" in *c*) ;; *) fail "crasher should show c in xm list, shows '$state'" ;; esac
case "$xstate" in *c*) ;; *) fail "crasher should show c in xl list, shows '$xstate'" ;; esac
cd=$(xm domid crasher)
xenstore-read "/local/domain/$cd/name" || fail "crasher's xenstore directory is gone"
grep -l '"crasher"' "$XM_STATE_DIR"/domains/*.json || fail "crasher's record is gone"
echo "DAEMON-CRASH-PRESERVED"
xm destroy crasher || fail "xm destroy crasher returned $?"
domain_gone_wait crasher 30 || fail "crasher still there after xm destroy"
[ -z "$(ls "$XM_STATE_DIR/domains")" ] || fail "xm destroy left a record: $(ls "$XM_STATE_DIR/domains")"
echo "DAEMON-DESTROY-DROPS-RECORD"

# --- 5. crash -> coredump-destroy: a core of the guest under /var/lib/xen/dump, then gone ----
# A Linux guest (the lab's busybox one, panicking at the end): libxenctrl's dumpcore needs the
# p2m list a Linux guest publishes in its shared info, which tiny-pv does not.
rm -rf /var/lib/xen/dump
cat > /etc/xen/dumper.cfg <<CFG
name    = "dumper"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init panic=1 quiet lab.end=crash"
memory  = 96
on_crash = "coredump-destroy"
CFG
xm create -q /etc/xen/dumper.cfg || fail "xm create dumper returned $?"
wait_log dumper "crash -> coredump-destroy" 120 || fail "no crash event for dumper"
domain_gone_wait dumper 30 || fail "dumper still there after coredump-destroy"
xm log dumper
core=$(ls /var/lib/xen/dump/dumper-*.core 2>/dev/null | head -1)
[ -s "$core" ] || fail "no core under /var/lib/xen/dump"
ls -l "$core"
# an ELF core (libxenctrl's format) holding the guest's memory
head -c 4 "$core" | grep -q ELF || fail "$core is not an ELF core"
echo "DAEMON-COREDUMP-WRITTEN $(wc -c < "$core") bytes"
rm -rf /var/lib/xen/dump
echo "--- xm log"
xm log
