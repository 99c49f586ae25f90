#!/bin/sh
# Create/shutdown cycles driven through the lifecycle daemon, then its RSS, open fds and the
# xenstore node count must be where they were.
# Each round: `xm create` of tiny-pv with tinypv.reboot (it boots in milliseconds and reboots
# itself at once) under on_reboot='restart'; the daemon destroys it and creates it again
# (through create::create_domain, in its own process) until the restart-storm limit
# (--storm-deaths 10) stops the round: 10 create/shutdown/destroy cycles per round, all
# handled by the daemon, ending with no guest. One warm-up round, then rounds until the time
# budget is spent; after each round the daemon's VmRSS, its fd count and the xenstore node
# count are printed as results. At the end fds and nodes must equal the warm-up values and RSS
# may exceed them by at most 256 KiB.
# (Under the lab's emulated CPU, `xm create` alone takes about 10 s, so 200 cycles of
# `xm create` + power-off do not fit in a scenario; the daemon's own restarts cost 2-4 s.)
# lab-timeout: 300
# lab-expect: DAEMON-CYCLES-DONE
# lab-expect: DAEMON-CYCLES-NO-GROWTH
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (daemon-cycles.files copies target/guests/tiny-pv.elf)"
export XM_STATE_DIR=/var/lib/xm-rs-lab
rm -rf "$XM_STATE_DIR"
daemon_scenario /tmp/xm-daemon-cycles.log
PER_ROUND=10
# A round starts only when it should end (judging by the last one) before this many ms.
BUDGET_MS=150000   # fits CI's time; raise it for a longer soak (200+ cycles take ~10 min)
RSS_TOLERANCE_KB=256
T_START=$(now_ms)


tiny_pv_cfg cyc reboot 'on_reboot = "restart"'

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$DPID/status"; }
fds() { ls "/proc/$DPID/fd" | wc -l; }
nodes() { xenstore-ls -f / | wc -l; }
storms() { grep -c "restart storm" "$XM_STATE_DIR/events.log" 2>/dev/null || echo 0; }

# round N: one xm create, then the daemon's restarts until the storm limit ends the round.
round() {
    before=$(storms)
    xm create -q /etc/xen/cyc.cfg || fail "round $1: xm create returned $?"
    i=0
    while [ "$(storms)" = "$before" ]; do
        [ $i -ge 1500 ] && { xm log cyc | tail -5; tail -20 "$DLOG"; fail "round $1 did not end within 300 s"; }
        sleep 0.2; i=$((i + 1))
    done
    domain_gone_wait cyc 30 || fail "round $1: cyc still there after its storm"
}
# settle: the domain's nodes and netback/blkback go away asynchronously; wait for the node
# count to come back to $1 (or 5 s).
settle() {
    k=0
    while [ "$(nodes)" != "$1" ] && [ $k -lt 25 ]; do sleep 0.2; k=$((k + 1)); done
}

# no_domains_left: wait (up to 10 s) until xenstore holds no domain but dom0: the daemon sweeps
# a destroyed domain's nodes on its next scan, so the baseline is taken only once it has.
no_domains_left() {
    k=0
    while xenstore-list /local/domain | grep -qvx 0 && [ $k -lt 50 ]; do sleep 0.2; k=$((k + 1)); done
}
# events_by_kind: how many events of each kind the daemon logged (for a failure's report).
events_by_kind() {
    sed -n 's/.*"event":"\([a-z_-]*\)".*/\1/p' "$XM_STATE_DIR/events.log" | sort | uniq -c
}

start_daemon --storm-deaths $PER_ROUND --storm-window 3600
round warm-up
no_domains_left
rss0=$(rss); fds0=$(fds); nodes0=$(nodes)
result daemon-cycles-rss-kb-warm "$rss0"
result daemon-cycles-fds-warm "$fds0"
result daemon-cycles-xenstore-nodes-warm "$nodes0"
mark daemon-cycles-start
t0=$(now_ms)
rounds=0
last_ms=$((t0 - T_START))
while [ $rounds = 0 ] || [ $(( $(now_ms) - T_START + last_ms )) -lt $BUDGET_MS ]; do
    r0=$(now_ms)
    rounds=$((rounds + 1))
    round "$rounds"
    settle "$nodes0"
    last_ms=$(( $(now_ms) - r0 ))
    result daemon-cycles-round-$rounds "ms=$last_ms rss_kb=$(rss) fds=$(fds) xenstore_nodes=$(nodes)"
done
t1=$(now_ms)
mark daemon-cycles-end
cycles=$((rounds * PER_ROUND))
handled=$(grep -c '"event":"reboot"' "$XM_STATE_DIR/events.log")
result daemon-cycles-done "$cycles"
result daemon-cycles-ms-per-cycle $(( (t1 - t0) / cycles ))
result daemon-cycles-reboots-handled-total "$handled"
[ "$handled" = $(( (rounds + 1) * PER_ROUND )) ] || {
    events_by_kind; grep -v '"event":"reboot"' "$XM_STATE_DIR/events.log" | tail -20
    grep -n 'restart storm' "$XM_STATE_DIR/events.log"
    fail "the daemon handled $handled reboots over $((rounds + 1)) rounds of $PER_ROUND"; }
echo "DAEMON-CYCLES-DONE $cycles cycles after $PER_ROUND warm-up cycles ($rounds rounds)"
rss1=$(rss); fds1=$(fds); nodes1=$(nodes)
result daemon-cycles-rss-kb-after "$rss1"
result daemon-cycles-fds-after "$fds1"
result daemon-cycles-xenstore-nodes-after "$nodes1"
grep -E '^(VmRSS|VmHWM|VmSize)' "/proc/$DPID/status"
[ "$fds1" = "$fds0" ] || { ls -l "/proc/$DPID/fd"; fail "open fds grew: $fds0 -> $fds1"; }
[ "$nodes1" = "$nodes0" ] || { xenstore-ls -f / | sed 's/ = .*//'; fail "xenstore nodes: $nodes0 -> $nodes1"; }
[ $((rss1 - rss0)) -le $RSS_TOLERANCE_KB ] || fail "RSS grew by $((rss1 - rss0)) KiB (tolerance $RSS_TOLERANCE_KB)"
echo "DAEMON-CYCLES-NO-GROWTH rss ${rss0}->${rss1} KiB, fds ${fds0}->${fds1}, xenstore nodes ${nodes0}->${nodes1}"
