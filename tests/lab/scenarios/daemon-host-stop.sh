#!/bin/sh
# Host shutdown with the lifecycle daemon running: `xm autostart --stop` (xendomains stop, the
# xm-rs-autostart.service ExecStop) first marks the state directory host-stopping, and the
# daemon then restarts no guest, not even one whose on_poweroff is 'restart'.
# 1. Without the mark, the daemon restarts tiny-pv (tinypv.block, on_poweroff='restart') after
#    `xm shutdown` (so the daemon does watch it).
# 2. `xm autostart --stop --auto-only` with an empty auto directory marks the host stopping and
#    stops nothing; `xm shutdown` powers the guest off: the daemon destroys it and says why,
#    nothing comes back.
# 3. `xm autostart` removes the mark.
# 4. The whole `xm autostart --stop` on a fresh guest: it shuts down and nothing comes back.
# lab-timeout: 300
# lab-expect: [hoststop] TINYPV-SHUTDOWN-REQUEST poweroff
# lab-expect: DAEMON-RESTARTS-WITHOUT-MARK
# lab-expect: HOST-STOP-MARKED
# lab-expect: HOST-STOP-NOT-RESTARTED
# lab-expect: HOST-STOP-MARK-CLEARED
# lab-expect: HOST-STOP-FULL-NOT-RESTARTED
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (daemon-host-stop.files copies target/guests/tiny-pv.elf)"
command -v xm >/dev/null || fail "xm is not installed in dom0"
export XM_STATE_DIR=/var/lib/xm-rs-hoststop
rm -rf "$XM_STATE_DIR"
MARK="$XM_STATE_DIR/host-stopping"
AUTO=/tmp/auto-empty
mkdir -p "$AUTO"
daemon_scenario /tmp/xm-daemon-hoststop.log
start_daemon
echo "daemon pid $DPID"

tiny_pv_cfg hoststop block 'on_poweroff = "restart"'
restarts() { xm log hoststop | grep -c "restarted as domain"; }

# --- 1. no mark: a powered-off guest comes back ---------------------------------------------
xm create -q /etc/xen/hoststop.cfg || fail "xm create hoststop returned $?"
d1=$(xm domid hoststop) || fail "no hoststop after xm create"
xm shutdown hoststop || fail "xm shutdown returned $?"
wait_log hoststop "restarted as domain" 60 || fail "the daemon did not restart hoststop"
d2=$(xm domid hoststop) || fail "hoststop gone after its restart"
[ "$d2" != "$d1" ] || fail "the restart kept domid $d1"
echo "DAEMON-RESTARTS-WITHOUT-MARK $d1 -> $d2"

# --- 2. marked: the daemon does not restart it ----------------------------------------------
mark host-stop-marked
xm autostart --stop --auto-only --dir "$AUTO" || fail "xm autostart --stop --auto-only returned $?"
[ -f "$MARK" ] || fail "xm autostart --stop left no $MARK"
xm domid hoststop >/dev/null || fail "--auto-only with an empty auto dir stopped hoststop"
echo "HOST-STOP-MARKED"
xm shutdown hoststop || fail "xm shutdown returned $?"
wait_log hoststop "not restarted: the host is stopping" 60 || fail "the daemon did not hold back"
domain_gone_wait hoststop 30 || fail "hoststop still there"
xm log hoststop
[ "$(restarts)" = 1 ] || fail "hoststop was restarted while the host was stopping"
echo "HOST-STOP-NOT-RESTARTED"

# --- 3. xm autostart clears the mark --------------------------------------------------------
xm autostart --dir "$AUTO" || fail "xm autostart returned $?"
[ -e "$MARK" ] && fail "xm autostart left $MARK"
echo "HOST-STOP-MARK-CLEARED"

# --- 4. the whole stop --------------------------------------------------------------------
xm create -q /etc/xen/hoststop.cfg || fail "xm create hoststop (again) returned $?"
d3=$(xm domid hoststop) || fail "no hoststop after the second xm create"
mark host-stop-full
xm autostart --stop --timeout 60 > /tmp/hoststop.out 2>&1
rc=$?
cat /tmp/hoststop.out
[ $rc -eq 0 ] || fail "xm autostart --stop returned $rc"
[ -f "$MARK" ] || fail "xm autostart --stop left no $MARK"
domain_gone_wait hoststop 30 || fail "hoststop still there after xm autostart --stop"
# the daemon may have seen the poweroff before xm reaped it: give it time to act on it
i=0
while [ $i -lt 25 ] && ! xm log hoststop | grep -q "id $d3).*not restarted"; do sleep 0.2; i=$((i + 1)); done
xm log hoststop
xm domid hoststop 2>/dev/null && fail "hoststop came back after xm autostart --stop"
[ "$(restarts)" = 1 ] || fail "hoststop was restarted during xm autostart --stop"
echo "HOST-STOP-FULL-NOT-RESTARTED"
rm -f "$MARK"
