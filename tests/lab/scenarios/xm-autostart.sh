#!/bin/sh
# Managed domains and autostart (issue 7, parts 2 and 3) on real Xen.
# 1. `xm new` stores a definition of the busybox guest; `xm list` shows it halted (no ID, no
#    state) and `--state=halted` selects it; `xm start` creates it, `--state=running` then
#    shows it; a second start and a `xm delete` are refused while it runs; once destroyed it is
#    halted again and `xm delete` forgets it.
# 2. /etc/xen/auto holds symlinks to the three servers' configs (configs/, verbatim: 512 +
#    2048 + 1024 MB, hence lab-ram). `xm autostart` starts all three and each boots its LVM
#    root filesystem; a second run starts nothing (cron-safe), `--quiet` prints nothing; the
#    xendomains init script's `status` agrees; its `stop` shuts all three down cleanly and
#    `xl list` shows only Domain-0.
# lab-timeout: 1200
# lab-ram: 5632
# lab-packages: lvm2 libdevmapper-event1.02.1 libdevmapper1.02.1 libaio1 e2fsprogs
# lab-bins: /sbin/lvm /sbin/mke2fs
# lab-expect: XM-NEW-DEFINED
# lab-expect: XM-NEW-TWICE-REFUSED
# lab-expect: XM-LIST-SHOWS-HALTED
# lab-expect: XM-START-RAN
# lab-expect: [mgd-vm] GUEST-UP
# lab-expect: XM-LIST-STATE-RUNNING
# lab-expect: XM-START-TWICE-REFUSED
# lab-expect: XM-DELETE-REFUSED-WHILE-RUNNING
# lab-expect: XM-LIST-HALTED-AFTER-DESTROY
# lab-expect: XM-DELETE-OK
# lab-expect: XM-AUTOSTART-STARTED-3
# lab-expect: [beijaflor-vm] ROOTFS-READY
# lab-expect: [colibri-vm] ROOTFS-READY
# lab-expect: [tucano-vm] ROOTFS-READY
# lab-expect: XM-AUTOSTART-AGAIN-STARTED-NOTHING
# lab-expect: XM-AUTOSTART-QUIET-SILENT
# lab-expect: XENDOMAINS-STATUS-ALL-RUNNING
# lab-expect: XENDOMAINS-STOP-CLEAN
# lab-expect: [beijaflor-vm] ROOTFS-SHUTDOWN
# lab-expect: [colibri-vm] ROOTFS-SHUTDOWN
# lab-expect: [tucano-vm] ROOTFS-SHUTDOWN
# lab-expect: XL-LIST-ONLY-DOM0
# lab-expect: XENDOMAINS-STATUS-NOT-RUNNING
. /lab/lib.sh

command -v xm >/dev/null || fail "xm is not installed in dom0"
export XM_STATE_DIR=/var/lib/xm-rs

# ---- 1. managed domains ----
busybox_guest_cfg mgd-vm 00:16:3e:10:00:20
# keep it running until destroyed
sed -i 's/panic=1/panic=1 lab.end=wait/' /etc/xen/mgd-vm.cfg
mark xm-new
xm new /etc/xen/mgd-vm.cfg || fail "xm new returned $?"
ls -l "$XM_STATE_DIR/managed/"
[ -f "$XM_STATE_DIR/managed/mgd-vm.json" ] || fail "no definition file"
echo "XM-NEW-DEFINED"
xm new /etc/xen/mgd-vm.cfg 2>/tmp/new2.err && fail "a second xm new of the same name succeeded"
cat /tmp/new2.err
grep -q "already exists" /tmp/new2.err && echo "XM-NEW-TWICE-REFUSED"
xm list | tee /tmp/list1
# the halted row: name, no ID, 128 MB, 1 VCPU, no state, 0.0
grep -Eq '^mgd-vm +128 +1 +0\.0$' /tmp/list1 || fail "xm list does not show mgd-vm halted"
xm list --state=halted | grep -q '^mgd-vm ' || fail "--state=halted does not select mgd-vm"
xm list --state=running | grep -q '^mgd-vm ' && fail "--state=running selects the halted mgd-vm"
echo "XM-LIST-SHOWS-HALTED"
xm list --json --state=halted
xm start mgd-vm || fail "xm start returned $?"
echo "XM-START-RAN"
domain_wait mgd-vm 60 || fail "mgd-vm does not exist after xm start"
guest_wait mgd-vm GUEST-UP 180 || fail "mgd-vm did not print GUEST-UP"
xm list --state=running | tee /tmp/list2
grep -q '^mgd-vm ' /tmp/list2 && echo "XM-LIST-STATE-RUNNING"
xm start mgd-vm 2>/tmp/start2.err && fail "a second xm start succeeded"
cat /tmp/start2.err
grep -q "already running" /tmp/start2.err && echo "XM-START-TWICE-REFUSED"
xm delete mgd-vm 2>/tmp/delete1.err && fail "xm delete of a running domain succeeded"
cat /tmp/delete1.err
grep -q "not halted" /tmp/delete1.err && echo "XM-DELETE-REFUSED-WHILE-RUNNING"
xm destroy mgd-vm || fail "xm destroy returned $?"
domain_gone_wait mgd-vm 30 || fail "mgd-vm still there after xm destroy"
xm list | grep -Eq '^mgd-vm +128 +1 +0\.0$' && echo "XM-LIST-HALTED-AFTER-DESTROY"
xm delete mgd-vm || fail "xm delete returned $?"
xm list | grep -q '^mgd-vm ' && fail "mgd-vm still listed after xm delete"
[ -e "$XM_STATE_DIR/managed/mgd-vm.json" ] && fail "definition file left"
echo "XM-DELETE-OK"

# ---- 2. autostart ----
ensure_vg vg01 512
setup_lvm_guest vg01 beijaflor 96 32 10.99.0.10/24 10.99.0.1
setup_lvm_guest vg01 colibri 96 32 10.99.0.11/24 10.99.0.1
setup_lvm_guest vg01 tucano 96 32 10.99.0.12/24 10.99.0.1
install_boot_files
mkdir -p /etc/xen/auto /etc/default
for vm in tucano-vm beijaflor-vm colibri-vm; do ln -sf "../$vm.cfg" "/etc/xen/auto/$vm.cfg"; done
ls -l /etc/xen/auto
cat > /etc/default/xendomains <<CFG
XENDOMAINS_AUTO=/etc/xen/auto
XENDOMAINS_STOP_MAXWAIT=240
XENDOMAINS_SAVE=
XENDOMAINS_PARALLEL=3
XENDOMAINS_START_TIMEOUT=240
CFG
chmod +x /etc/init.d/xendomains
xl info | grep -E '^(total|free)_memory'

mark xm-autostart-first
t0=$(now_ms)
# All three at once: builds (the kernel in memory) take turns inside xm, device wiring overlaps.
xm autostart --parallel 3 --timeout 240 > /tmp/auto1.out 2>&1
rc=$?
result xm-autostart-3-domains-ms $(( $(now_ms) - t0 ))
cat /tmp/auto1.out
[ $rc -eq 0 ] || fail "xm autostart returned $rc"
[ "$(grep -c '^Started Xen domain' /tmp/auto1.out)" -eq 3 ] || fail "xm autostart did not start three domains"
for vm in beijaflor-vm colibri-vm tucano-vm; do xl domid $vm >/dev/null 2>&1 || fail "$vm is not running"; done
echo "XM-AUTOSTART-STARTED-3"
xm list
for vm in beijaflor-vm colibri-vm tucano-vm; do
    guest_wait $vm ROOTFS-READY 400 || fail "$vm did not reach ROOTFS-READY"
done
result xm-autostart-3-ready-ms $(( $(now_ms) - t0 ))
ids_before=$(for vm in beijaflor-vm colibri-vm tucano-vm; do xl domid $vm; done | tr '\n' ' ')

mark xm-autostart-again
xm autostart > /tmp/auto2.out 2>&1 || { cat /tmp/auto2.out; fail "second xm autostart returned $?"; }
cat /tmp/auto2.out
ids_after=$(for vm in beijaflor-vm colibri-vm tucano-vm; do xl domid $vm; done | tr '\n' ' ')
[ "$ids_before" = "$ids_after" ] || fail "domids changed: $ids_before -> $ids_after"
grep -q '^Started' /tmp/auto2.out && fail "the second run started something"
[ "$(grep -c 'already running' /tmp/auto2.out)" -eq 3 ] || fail "the second run did not skip all three"
[ "$(xl list | grep -vc -e '^Name' -e '^Domain-0')" -eq 3 ] || { xl list; fail "not exactly three guests"; }
echo "XM-AUTOSTART-AGAIN-STARTED-NOTHING"
# the cron line: silent when there is nothing to do
out=$(xm autostart --quiet 2>&1)
rc=$?
[ $rc -eq 0 ] || { echo "$out"; fail "xm autostart --quiet returned $rc"; }
[ -z "$out" ] || fail "xm autostart --quiet printed: $out"
echo "XM-AUTOSTART-QUIET-SILENT"

/etc/init.d/xendomains status || fail "xendomains status returned $? with all three running"
echo "XENDOMAINS-STATUS-ALL-RUNNING"

mark xendomains-stop
t1=$(now_ms)
/etc/init.d/xendomains stop > /tmp/stop.out 2>&1
rc=$?
result xendomains-stop-3-domains-ms $(( $(now_ms) - t1 ))
cat /tmp/stop.out
[ $rc -eq 0 ] || fail "xendomains stop returned $rc"
[ "$(grep -c 'shut down in' /tmp/stop.out)" -eq 3 ] || fail "not all three shut down cleanly"
grep -q 'destroyed' /tmp/stop.out && fail "xendomains stop had to destroy a domain"
echo "XENDOMAINS-STOP-CLEAN"
flush_consoles
# a destroyed domain lingers (dying) until its backends have let go of its pages
i=0
until [ "$(xl list | grep -vc '^Name')" -eq 1 ] || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
xl list | tee /tmp/xl.list
[ "$(grep -vc '^Name' /tmp/xl.list)" -eq 1 ] && grep -q '^Domain-0 ' /tmp/xl.list || fail "xl list shows more than Domain-0"
[ -z "$(xenstore-list /local/domain | grep -v '^0$')" ] || fail "domains left in xenstore"
echo "XL-LIST-ONLY-DOM0"
/etc/init.d/xendomains status
rc=$?
[ $rc -eq 3 ] || fail "xendomains status returned $rc with nothing running (want 3)"
echo "XENDOMAINS-STATUS-NOT-RUNNING"
