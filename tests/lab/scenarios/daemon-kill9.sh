#!/bin/sh
# The lifecycle daemon survives kill -9: two tiny-pv guests wait (tinypv.block) under
# on_reboot='restart'; `xm reboot` of one is handled; the daemon is killed with SIGKILL; while
# it is down `xm create` starts a third guest that powers off at once (nobody reaps it); the
# daemon starts again (its pid-file lock died with it), adopts the running guests and the new
# one, destroys the powered-off one, and handles a reboot of the other guest. `xm log` shows
# the reboot handled before the kill and the one after.
# lab-timeout: 300
# lab-expect: [dk-one] TINYPV-BLOCKING
# lab-expect: [dk-two] TINYPV-BLOCKING
# lab-expect: DAEMON-KILL9-FIRST-REBOOT-OK
# lab-expect: DAEMON-KILL9-KILLED
# lab-expect: DAEMON-KILL9-RESTARTED
# lab-expect: DAEMON-KILL9-ADOPTED-LATE
# lab-expect: DAEMON-KILL9-REBOOT-AFTER-OK
# lab-expect: DAEMON-KILL9-LOG-BOTH
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (daemon-kill9.files copies target/guests/tiny-pv.elf)"
export XM_STATE_DIR=/var/lib/xm-rs-lab
rm -rf "$XM_STATE_DIR"
daemon_scenario /tmp/xm-daemon-kill9.log


for g in dk-one dk-two; do
    tiny_pv_cfg "$g" block 'on_reboot = "restart"'
done
tiny_pv_cfg dk-late "" 'on_poweroff = "destroy"'

start_daemon
first_pid=$DPID
xm create -q /etc/xen/dk-one.cfg || fail "xm create dk-one returned $?"
xm create -q /etc/xen/dk-two.cfg || fail "xm create dk-two returned $?"
guest_wait dk-one TINYPV-BLOCKING 30 || fail "dk-one did not block"
guest_wait dk-two TINYPV-BLOCKING 30 || fail "dk-two did not block"

two_before=$(xm domid dk-two)
xm reboot dk-two || fail "xm reboot dk-two returned $?"
wait_log dk-two "reboot -> restart: .*restarted as domain" 60 || fail "dk-two was not restarted"
two_after=$(xm domid dk-two)
[ "$two_after" != "$two_before" ] || fail "dk-two kept domid $two_before"
echo "DAEMON-KILL9-FIRST-REBOOT-OK dk-two $two_before -> $two_after"

kill -9 "$first_pid"
i=0
while kill -0 "$first_pid" 2>/dev/null; do
    [ $i -ge 50 ] && fail "the daemon survived kill -9"
    sleep 0.1; i=$((i + 1))
done
wait "$first_pid" 2>/dev/null
echo "DAEMON-KILL9-KILLED pid $first_pid"

# While it is down: a guest that powers off at once stays shut down, nobody reaps it.
xm create -q /etc/xen/dk-late.cfg || fail "xm create dk-late returned $?"
guest_wait dk-late "TINYPV-DONE poweroff" 30 || fail "dk-late did not power off"
sleep 1
xm list dk-late || fail "dk-late vanished with no daemon running"

start_daemon
[ "$DPID" != "$first_pid" ] || fail "same pid?"
echo "DAEMON-KILL9-RESTARTED pid $DPID"
wait_log dk-late "poweroff -> destroy: destroyed" 30 || fail "dk-late was not destroyed after the restart"
domain_gone_wait dk-late 30 || fail "dk-late still there"
xm log | grep "adopted" || true
xm log dk-one | grep -q "adopted" || fail "dk-one was not adopted"
echo "DAEMON-KILL9-ADOPTED-LATE"

one_before=$(xm domid dk-one)
xm reboot dk-one || fail "xm reboot dk-one returned $?"
wait_log dk-one "reboot -> restart: .*restarted as domain" 60 || fail "dk-one was not restarted"
one_after=$(xm domid dk-one)
[ "$one_after" != "$one_before" ] || fail "dk-one kept domid $one_before"
guest_wait dk-one TINYPV-BLOCKING 30 || fail "the restarted dk-one did not come up"
xm list
echo "DAEMON-KILL9-REBOOT-AFTER-OK dk-one $one_before -> $one_after"

echo "--- xm log"
xm log
n=$(xm log | grep -c "reboot -> restart: .*restarted as domain")
starts=$(xm log | grep -c "daemon-start")
[ "$n" = 2 ] && [ "$starts" = 2 ] || fail "xm log shows $n restarts and $starts daemon starts (expected 2 and 2)"
xm log --json | head -3
echo "DAEMON-KILL9-LOG-BOTH"
xm destroy dk-one; xm destroy dk-two
