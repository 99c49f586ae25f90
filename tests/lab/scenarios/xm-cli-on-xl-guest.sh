#!/bin/sh
# Our `xm` read and control commands on domains Debian's `xl` created: the busybox guest
# (file disk + bridged vif, stays up with lab.end=wait) for list/--json/-l, domid, domname,
# info, dmesg, uptime, pause/unpause, mem-set (the balloon follows), sysrq (seen through
# `xm console`), vcpu-list (agrees with xl's on an xl-created guest), rename and destroy (xenstore and the
# loop device cleaned up); then tiny-pv in block mode for `xm shutdown -w`, `xm reboot -w`
# (xl's background process restarts the guest) and `xm shutdown -a -H -w`.
# lab-timeout: 360
# lab-expect: [xmcli] GUEST-UP
# lab-expect: XM-CLI-LIST-HEADER-OK
# lab-expect: XM-CLI-LIST-MATCHES-XL
# lab-expect: XM-CLI-LIST-JSON-OK
# lab-expect: XM-CLI-LIST-LONG-OK
# lab-expect: XM-CLI-DOMID-DOMNAME-OK
# lab-expect: XM-CLI-NO-SUCH-DOMAIN-OK
# lab-expect: XM-CLI-INFO-OK
# lab-expect: XM-CLI-DMESG-OK
# lab-expect: XM-CLI-UPTIME-OK
# lab-expect: XM-CLI-PAUSE-OK
# lab-expect: XM-CLI-UNPAUSE-OK
# lab-expect: XM-CLI-MEMSET-OK
# lab-expect: XM-CLI-BALLOON-FOLLOWED
# lab-expect: XM-CLI-VCPU-LIST-MATCHES-XL
# lab-expect: XM-CLI-SYSRQ-CONSOLE-OK
# lab-expect: XM-CLI-RENAME-OK
# lab-expect: XM-CLI-DESTROY-OK
# lab-expect: XM-CLI-DESTROY-CLEANED-UP
# lab-expect: [tinypv-xm] TINYPV-BLOCKING
# lab-expect: [tinypv-xm] TINYPV-SHUTDOWN-REQUEST poweroff
# lab-expect: XM-CLI-SHUTDOWN-WAIT-OK
# lab-expect: [tinypv-xb] TINYPV-SHUTDOWN-REQUEST reboot
# lab-expect: XM-CLI-REBOOT-WAIT-OK
# lab-expect: XM-CLI-SHUTDOWN-ALL-OK
. /lab/lib.sh

XM=/usr/local/bin/xm
[ -x "$XM" ] || fail "$XM missing"

# --- the busybox guest, staying up -------------------------------------------------------------
dd if=/dev/zero of=/var/lib/xen/xmcli.img bs=1M count=16 2>/dev/null
cat > /etc/xen/xmcli.cfg <<CFG
name    = "xmcli"
type    = "pv"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init quiet lab.disk=xvda lab.end=wait"
memory  = 128
vcpus   = 1
disk    = [ 'file:/var/lib/xen/xmcli.img,xvda,w' ]
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:10:01' ]
CFG
xl create /etc/xen/xmcli.cfg || fail "xl create xmcli returned $?"
guest_wait xmcli GUEST-DONE 120 || fail "xmcli did not print GUEST-DONE"
id=$(xl domid xmcli) || fail "xl domid xmcli"

# --- list ---------------------------------------------------------------------------------------
$XM list > /tmp/xm-list.txt || fail "xm list returned $?"
xl list > /tmp/xl-list.txt
cat /tmp/xm-list.txt
cat /tmp/xl-list.txt
want='Name                                        ID   Mem VCPUs      State   Time(s)'
[ "$(head -n 1 /tmp/xm-list.txt)" = "$want" ] || fail "xm list header differs from xm's"
echo "XM-CLI-LIST-HEADER-OK"
# Name, ID, Mem, VCPUs agree with xl (State and Time move between the two calls).
awk 'NR > 1 { print $1, $2, $3, $4 }' /tmp/xm-list.txt > /tmp/xm-cols.txt
awk 'NR > 1 { print $1, $2, $3, $4 }' /tmp/xl-list.txt > /tmp/xl-cols.txt
if cmp -s /tmp/xm-cols.txt /tmp/xl-cols.txt; then
    echo "XM-CLI-LIST-MATCHES-XL"
else
    diff /tmp/xl-cols.txt /tmp/xm-cols.txt
    fail "xm list and xl list disagree on name/id/mem/vcpus"
fi
# Each line is the fixed-width format scripts cut (78 columns with a short name).
awk 'NR > 1 && length($0) < 78 { bad = 1 } END { exit bad }' /tmp/xm-list.txt ||
    fail "xm list lines are not xm's width"
$XM list --json > /tmp/xm-list.json || fail "xm list --json returned $?"
cat /tmp/xm-list.json
grep -q '"name": "xmcli"' /tmp/xm-list.json && grep -q "\"domid\": $id," /tmp/xm-list.json ||
    fail "xm list --json lacks xmcli ($id)"
grep -q '"kernel": "/lab/guest/vmlinuz"' /tmp/xm-list.json || fail "xm list --json lacks the kernel"
echo "XM-CLI-LIST-JSON-OK"
$XM list -l xmcli | tee /tmp/xm-list-l.txt
grep -q "^(domain" /tmp/xm-list-l.txt && grep -q "(domid $id)" /tmp/xm-list-l.txt &&
    grep -q "(name xmcli)" /tmp/xm-list-l.txt || fail "xm list -l is not xmcli's S-expression"
echo "XM-CLI-LIST-LONG-OK"

# --- domid / domname / errors -----------------------------------------------------------------
[ "$($XM domid xmcli)" = "$id" ] || fail "xm domid xmcli != $id"
[ "$($XM domname "$id")" = xmcli ] || fail "xm domname $id != xmcli"
[ "$($XM domname 0)" = "$(xl domname 0)" ] || fail "xm domname 0 differs from xl"
echo "XM-CLI-DOMID-DOMNAME-OK"
$XM domid nosuch > /tmp/out 2> /tmp/err; rc=$?
cat /tmp/err
[ $rc = 1 ] && [ "$(cat /tmp/err)" = "Error: Domain 'nosuch' does not exist." ] && [ ! -s /tmp/out ] ||
    fail "xm domid nosuch: rc=$rc"
echo "XM-CLI-NO-SUCH-DOMAIN-OK"

# --- info / dmesg / uptime ---------------------------------------------------------------------
$XM info | tee /tmp/xm-info.txt || fail "xm info returned $?"
xl info > /tmp/xl-info.txt
for key in nr_cpus total_memory xen_major xen_minor; do
    ours=$(awk -F': ' -v k="$key" '$1 ~ "^"k" *$" { print $2 }' /tmp/xm-info.txt)
    theirs=$(awk -F': ' -v k="$key" '$1 ~ "^"k" *$" { print $2 }' /tmp/xl-info.txt)
    echo "info $key: xm='$ours' xl='$theirs'"
    [ -n "$ours" ] && [ "$ours" = "$theirs" ] || fail "xm info $key differs from xl info"
done
grep -q '^xend_config_format     : 4$' /tmp/xm-info.txt || fail "xm info lacks xend_config_format"
echo "XM-CLI-INFO-OK"
$XM dmesg > /tmp/xm-dmesg.txt || fail "xm dmesg returned $?"
xl dmesg > /tmp/xl-dmesg.txt
head -n 3 /tmp/xm-dmesg.txt
[ -s /tmp/xm-dmesg.txt ] && [ "$(head -n 1 /tmp/xm-dmesg.txt)" = "$(head -n 1 /tmp/xl-dmesg.txt)" ] ||
    fail "xm dmesg differs from xl dmesg"
echo "XM-CLI-DMESG-OK"
$XM uptime | tee /tmp/xm-uptime.txt || fail "xm uptime returned $?"
grep -Eq "^xmcli +$id +[0-9 ]?[0-9]:[0-9][0-9]:[0-9][0-9]$" /tmp/xm-uptime.txt || fail "xm uptime has no xmcli line"
grep -q '^Domain-0 ' /tmp/xm-uptime.txt || fail "xm uptime has no Domain-0 line"
echo "XM-CLI-UPTIME-OK"

# --- pause / unpause, checked with xl --------------------------------------------------------
state_of() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
$XM pause xmcli || fail "xm pause returned $?"
state=$(state_of xmcli); echo "after xm pause: $state"
case "$state" in *p*) echo "XM-CLI-PAUSE-OK" ;; *) fail "xl list says '$state' after xm pause" ;; esac
xmstate=$($XM list xmcli | awk 'NR == 2 { print $5 }')
case "$xmstate" in ??p???) ;; *) fail "xm list says '$xmstate' for a paused domain" ;; esac
$XM unpause "$id" || fail "xm unpause returned $?"
state=$(state_of xmcli); echo "after xm unpause: $state"
case "$state" in *p*) fail "xl list says '$state' after xm unpause" ;; *) echo "XM-CLI-UNPAUSE-OK" ;; esac

# --- mem-set: the target node, and the guest's balloon following it ---------------------------
$XM mem-set xmcli 96 || fail "xm mem-set returned $?"
target=$(xenstore-read "/local/domain/$id/memory/target")
[ "$target" = 98304 ] || fail "memory/target is '$target' after xm mem-set 96"
echo "XM-CLI-MEMSET-OK"
$XM mem-set xmcli 4096 2> /tmp/err && fail "xm mem-set above static-max succeeded"
cat /tmp/err
i=0
while [ $i -lt 30 ]; do
    mem=$(xl list xmcli | awk 'NR == 2 { print $3 }')
    [ "$mem" -le 97 ] 2>/dev/null && break
    sleep 1; i=$((i + 1))
done
echo "xl list Mem after mem-set 96: $mem"
[ "$mem" -le 97 ] 2>/dev/null && echo "XM-CLI-BALLOON-FOLLOWED" || fail "the guest kept $mem MiB"

# --- vcpu-list on a guest xl made: same vcpus, pcpus and states as xl's -----------------------
$XM vcpu-list xmcli || fail "xm vcpu-list returned $?"
xl vcpu-list xmcli
ours=$($XM vcpu-list xmcli | awk 'NR > 1 { print $3 }' | tr '\n' ' ')
theirs=$(xl vcpu-list xmcli | awk 'NR > 1 { print $3 }' | tr '\n' ' ')
[ -n "$ours" ] && [ "$ours" = "$theirs" ] && echo "XM-CLI-VCPU-LIST-MATCHES-XL" || fail "vcpu ids differ: xm '$ours', xl '$theirs'"

# --- sysrq, watched through our console --------------------------------------------------------
(sleep 2; $XM sysrq xmcli h) &
timeout 6 $XM console xmcli < /dev/null > /tmp/xm-console.txt 2>&1
wait
sed -n '1,5p' /tmp/xm-console.txt
grep -qi 'sysrq.*help' /tmp/xm-console.txt || fail "no SysRq help on xm console"
[ -z "$(xenstore-read "/local/domain/$id/control/sysrq" 2>/dev/null)" ] || fail "control/sysrq was not consumed"
echo "XM-CLI-SYSRQ-CONSOLE-OK"

# --- rename, then destroy ------------------------------------------------------------------------
$XM rename xmcli xmcli-renamed || fail "xm rename returned $?"
[ "$(xl domid xmcli-renamed)" = "$id" ] || fail "xl does not see the new name"
$XM rename xmcli-renamed xmcli 2>/dev/null; $XM rename xmcli xmcli-renamed
[ "$($XM domname "$id")" = xmcli-renamed ] || fail "xm rename back and forth lost the name"
echo "XM-CLI-RENAME-OK"
xenstore-ls -f /local/domain/0/backend | grep "/$id/" | head -n 4
$XM destroy xmcli-renamed || fail "xm destroy returned $?"
domain_gone_wait xmcli-renamed 10 || fail "xmcli still there after xm destroy"
xl list | tee /tmp/xl-list.txt
grep -q xmcli /tmp/xl-list.txt && fail "xl list still shows xmcli"
echo "XM-CLI-DESTROY-OK"
sleep 1
left=$(xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep "/$id/")
[ -z "$left" ] || { echo "$left"; fail "backends of domain $id left in xenstore"; }
xenstore-read "/local/domain/$id/name" 2>/dev/null && fail "/local/domain/$id left in xenstore"
xenstore-ls /libxl 2>/dev/null | grep -q "^$id " && fail "/libxl/$id left in xenstore"
/usr/sbin/losetup -a | tee /tmp/loops.txt
grep -q xmcli.img /tmp/loops.txt && fail "the loop device of xmcli.img was not released"
echo "XM-CLI-DESTROY-CLEANED-UP"

# --- shutdown -w on tiny-pv, which answers control/shutdown ------------------------------------
cat > /etc/xen/tinypv-xm.cfg <<CFG
name     = "tinypv-xm"
type     = "pv"
kernel   = "/lab/files/tiny-pv.elf"
memory   = 32
vcpus    = 1
extra    = "tinypv.block"
on_poweroff = "destroy"
CFG
xl create /etc/xen/tinypv-xm.cfg || fail "xl create tinypv-xm returned $?"
guest_wait tinypv-xm TINYPV-BLOCKING 30 || fail "tinypv-xm did not print TINYPV-BLOCKING"
t0=$(now_ms)
$XM shutdown -w tinypv-xm | tee /tmp/xm-shutdown.txt || fail "xm shutdown -w returned $?"
t1=$(now_ms)
result xm-shutdown-wait-ms $((t1 - t0))
xl domid tinypv-xm 2>/dev/null && fail "tinypv-xm still exists when xm shutdown -w returned"
grep -q '^Domain tinypv-xm terminated$' /tmp/xm-shutdown.txt || fail "xm shutdown -w did not say terminated"
guest_wait tinypv-xm TINYPV-SHUTDOWN-REQUEST 5 || true
echo "XM-CLI-SHUTDOWN-WAIT-OK"

# --- reboot -w (xl restarts the guest under a new id) and shutdown -a -w -----------------------
tinypv_cfg() {
    cat > "/etc/xen/$1.cfg" <<CFG
name     = "$1"
type     = "pv"
kernel   = "/lab/files/tiny-pv.elf"
memory   = 32
vcpus    = 1
extra    = "tinypv.block"
on_poweroff = "destroy"
on_reboot   = "restart"
CFG
}
for g in tinypv-xa tinypv-xb; do
    tinypv_cfg $g
    xl create /etc/xen/$g.cfg || fail "xl create $g returned $?"
    guest_wait $g TINYPV-BLOCKING 30 || fail "$g did not print TINYPV-BLOCKING"
done
old=$(xl domid tinypv-xb)
$XM reboot -w tinypv-xb | tee /tmp/xm-reboot.txt || fail "xm reboot -w returned $?"
new=$(xl domid tinypv-xb) || fail "tinypv-xb did not come back"
echo "tinypv-xb: domid $old -> $new"
[ "$new" != "$old" ] || fail "tinypv-xb kept domid $old"
grep -q '^Domain tinypv-xb rebooted$' /tmp/xm-reboot.txt || fail "xm reboot -w did not say rebooted"
echo "XM-CLI-REBOOT-WAIT-OK"
# the restarted guest appends to the same console log: wait for its second BLOCKING
i=0
while [ "$(grep -c TINYPV-BLOCKING /var/log/xen/console/guest-tinypv-xb.log)" -lt 2 ] && [ $i -lt 150 ]; do
    sleep 0.1; i=$((i + 1))
done
flush_consoles
$XM shutdown -a -H -w | tee /tmp/xm-shutdown-all.txt || fail "xm shutdown -a -H -w returned $?"
xl list | tee /tmp/xl-list.txt
[ "$(awk 'NR > 1' /tmp/xl-list.txt | wc -l)" = 1 ] || fail "domains left after xm shutdown -a -w"
grep -q '^Domain tinypv-xa terminated$' /tmp/xm-shutdown-all.txt &&
    grep -q '^Domain tinypv-xb terminated$' /tmp/xm-shutdown-all.txt &&
    grep -q '^All domains terminated$' /tmp/xm-shutdown-all.txt || fail "xm shutdown -a -w output"
echo "XM-CLI-SHUTDOWN-ALL-OK"
