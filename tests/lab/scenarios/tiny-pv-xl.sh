#!/bin/sh
# Debian's `xl create` boots our tiny-pv guest kernel (tests/guests/tiny-pv): it checks its
# start_info, prints its command line on the PV console ring, reads its own name from xenstore
# over its store ring, and powers off; the domain disappears. Then the lifecycle flags:
# tinypv.block sleeps until `xl shutdown` (answered through the control/shutdown watch), and
# tinypv.crash (with tinypv.remap-rings: rings mapped by update_va_mapping instead of found
# through the M2P) ends in the crashed state, and tinypv.reboot shuts down with reason reboot
# (xl's own log of the domain says which reason code it saw).
# lab-timeout: 300
# lab-expect: [tinypv] TINYPV-UP
# lab-expect: [tinypv] TINYPV-STARTINFO-OK
# lab-expect: [tinypv] TINYPV-CMDLINE hello-from-cmdline
# lab-expect: [tinypv] TINYPV-NAME tinypv
# lab-expect: [tinypv] TINYPV-DONE poweroff
# lab-expect: TINYPV-XL-DOMAIN-GONE
# lab-expect: [tinypv-block] TINYPV-BLOCKING
# lab-expect: TINYPV-XL-BLOCKED-STATE-OK
# lab-expect: [tinypv-block] TINYPV-SHUTDOWN-REQUEST poweroff
# lab-expect: TINYPV-XL-SHUTDOWN-OK
# lab-expect: TINYPV-XL-RINGS-VIA-M2P
# lab-expect: [tinypv-crash] TINYPV-NAME tinypv-crash
# lab-expect: TINYPV-XL-RINGS-VIA-REMAP
# lab-expect: [tinypv-crash] TINYPV-DONE crash
# lab-expect: TINYPV-XL-CRASHED-STATE-OK
# lab-expect: [tinypv-reboot] TINYPV-DONE reboot
# lab-expect: TINYPV-XL-REBOOT-REASON-OK
. /lab/lib.sh

IMAGE=/lab/files/tiny-pv.elf
[ -s "$IMAGE" ] || fail "$IMAGE missing (tiny-pv-xl.files copies target/guests/tiny-pv.elf)"
ls -l "$IMAGE"
# The same image is embedded in our tiny-pv-image tool: both must agree.
if command -v tiny-pv-image >/dev/null; then
    tiny-pv-image /tmp/tiny-pv-embedded.elf || fail "tiny-pv-image failed"
    cmp "$IMAGE" /tmp/tiny-pv-embedded.elf || echo "note: tiny-pv-image differs from $IMAGE"
fi

# write_cfg NAME EXTRA ON_CRASH
write_cfg() {
    cat > "/etc/xen/$1.cfg" <<CFG
name     = "$1"
type     = "pv"
kernel   = "$IMAGE"
memory   = 32
vcpus    = 1
extra    = "$2"
on_poweroff = "destroy"
on_reboot   = "destroy"
on_crash    = "$3"
CFG
}

# state_of NAME: the State column of `xl list NAME` (r, b, p, s, c, d or -).
state_of() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }

# --- 1. boot, report, power off ---------------------------------------------------------------
write_cfg tinypv "hello-from-cmdline" destroy
mark tinypv-xl-create-start
t0=$(now_ms)
xl create /etc/xen/tinypv.cfg || fail "xl create tinypv returned $?"
t1=$(now_ms)
mark tinypv-xl-create-returned
result tinypv-xl-create-ms $((t1 - t0))
guest_wait tinypv TINYPV-DONE 30 || fail "tinypv did not print TINYPV-DONE"
t2=$(now_ms)
result tinypv-xl-create-to-done-ms $((t2 - t0))
domain_gone_wait tinypv 30 || fail "tinypv still there 30 s after TINYPV-DONE"
echo "TINYPV-XL-DOMAIN-GONE"
# xl's builder puts both rings inside the initial mapping: found through M2P and p2m.
log=/var/log/xen/console/guest-tinypv.log
grep -q 'TINYPV-MAP console .* via=m2p' "$log" && grep -q 'TINYPV-MAP store .* via=m2p' "$log" ||
    fail "tinypv did not find its rings through the M2P"
echo "TINYPV-XL-RINGS-VIA-M2P"

# --- 2. tinypv.block: sleeps (no CPU) until xl shutdown ---------------------------------------
write_cfg tinypv-block "tinypv.block" destroy
xl create /etc/xen/tinypv-block.cfg || fail "xl create tinypv-block returned $?"
guest_wait tinypv-block TINYPV-BLOCKING 30 || fail "tinypv-block did not print TINYPV-BLOCKING"
sleep 2
xl list tinypv-block
cpu1=$(xl list tinypv-block | awk 'NR == 2 { print $6 }')
sleep 3
cpu2=$(xl list tinypv-block | awk 'NR == 2 { print $6 }')
state=$(state_of tinypv-block)
echo "tinypv-block: state=$state cpu seconds $cpu1 -> $cpu2"
case "$state" in
    *b*) ;;
    *) fail "tinypv-block should be blocked, xl list says state '$state'" ;;
esac
# Sleeping in SCHEDOP_poll costs nothing: under 0.5 s of CPU over 3 s.
awk -v a="$cpu1" -v b="$cpu2" 'BEGIN { exit !(b - a < 0.5) }' || fail "tinypv-block burns CPU: $cpu1 -> $cpu2"
echo "TINYPV-XL-BLOCKED-STATE-OK"
t0=$(now_ms)
xl shutdown -w tinypv-block || fail "xl shutdown -w tinypv-block returned $?"
t1=$(now_ms)
result tinypv-xl-shutdown-ms $((t1 - t0))
domain_gone_wait tinypv-block 30 || fail "tinypv-block still there after xl shutdown -w"
guest_wait tinypv-block TINYPV-SHUTDOWN-REQUEST 5 || true
echo "TINYPV-XL-SHUTDOWN-OK"

# --- 3. tinypv.crash: SHUTDOWN_crash, preserved for inspection -------------------------------
write_cfg tinypv-crash "tinypv.crash tinypv.remap-rings" preserve
xl create /etc/xen/tinypv-crash.cfg || fail "xl create tinypv-crash returned $?"
guest_wait tinypv-crash "TINYPV-DONE crash" 30 || fail "tinypv-crash did not print TINYPV-DONE crash"
i=0
state=$(state_of tinypv-crash)
while [ $i -lt 100 ]; do
    case "$state" in *c*) break ;; esac
    sleep 0.1; i=$((i + 1)); state=$(state_of tinypv-crash)
done
echo "tinypv-crash: state=$state"
case "$state" in
    *c*) echo "TINYPV-XL-CRASHED-STATE-OK" ;;
    *) fail "tinypv-crash should be crashed, xl list says state '$state'" ;;
esac
log=/var/log/xen/console/guest-tinypv-crash.log
grep -q 'TINYPV-MAP console .* via=remap (forced) rc=0' "$log" &&
    grep -q 'TINYPV-MAP store .* via=remap (forced) rc=0' "$log" ||
    fail "tinypv-crash did not remap its rings"
echo "TINYPV-XL-RINGS-VIA-REMAP"
xl destroy tinypv-crash || fail "xl destroy tinypv-crash returned $?"
domain_gone_wait tinypv-crash 30 || fail "tinypv-crash still there after xl destroy"

# --- 4. tinypv.reboot: SHUTDOWN_reboot (on_reboot = destroy, so it does not come back) --------
write_cfg tinypv-reboot "tinypv.reboot" destroy
xl create /etc/xen/tinypv-reboot.cfg || fail "xl create tinypv-reboot returned $?"
guest_wait tinypv-reboot "TINYPV-DONE reboot" 30 || fail "tinypv-reboot did not print TINYPV-DONE reboot"
domain_gone_wait tinypv-reboot 30 || fail "tinypv-reboot still there 30 s after TINYPV-DONE"
sleep 1
cat /var/log/xen/xl-tinypv-reboot.log 2>/dev/null
# SHUTDOWN_reboot is reason code 1 (poweroff 0, crash 3)
grep -q 'reason code 1' /var/log/xen/xl-tinypv-reboot.log || fail "xl did not see shutdown reason reboot"
echo "TINYPV-XL-REBOOT-REASON-OK"
xl list
