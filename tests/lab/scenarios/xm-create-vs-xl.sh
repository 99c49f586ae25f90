#!/bin/sh
# Benchmark: how long `xm create` takes to return vs Debian's `xl create`, same config (the
# lab's busybox guest: Debian 6.1 bzImage + initramfs, 128 MiB, a file: disk on a loop device
# and a vif on xenbr0), same boot, runs alternating so neither gets a quieter machine.
# Both return once dom0's backends are ready for the guest (xl: hotplug done; ours: blkback
# has opened the disk, the vif is bridged), with the guest unpaused. Each domain is destroyed
# right after its create returns. Ours is measured cold (first build: the bzImage's xz payload
# is decompressed, then cached) and warm (the decompressed kernel comes from the cache, as it
# does for every later create of that kernel); also once with --wait-connected (until the
# guest's own blkfront/netfront are Connected), for information. The table at the end gives
# the ratios; the goal is ours <= 1/10 of xl's. Then, for information only: how long xm takes
# to start at all, a dry run, and one more cached create with each phase's time logged
# (XM-PHASES).
# lab-timeout: 420
# lab-expect: XM-VS-XL-TABLE
# lab-expect: XM-VS-XL-DONE
. /lab/lib.sh

RUNS=3
busybox_guest_cfg cmpguest 00:16:3e:00:00:61
sed -i 's/^on_crash.*/on_crash = "destroy"/' /etc/xen/cmpguest.cfg
cat /lab/guest/vmlinuz /lab/guest/initrd.gz > /dev/null   # page cache warm for both
rm -rf /var/cache/xm-rs/kernels                           # ours starts cold
: > /tmp/times

# timed TOOL LABEL COMMAND...: runs the create, records LABEL's time, destroys the domain.
timed() {
    tool=$1 label=$2; shift 2
    t0=$(now_ms)
    "$@" > /tmp/create.out 2>&1; rc=$?
    [ $rc = 0 ] || { cat /tmp/create.out; fail "$label: $* returned $rc"; }
    t1=$(now_ms)
    echo "$label $((t1 - t0))" >> /tmp/times
    result "xm-vs-xl-$label-ms" $((t1 - t0))
    "$tool" destroy cmpguest || fail "$label: $tool destroy failed"
    domain_gone_wait cmpguest 30 || fail "$label: cmpguest still there"
}

mark xm-vs-xl-start
timed xm xm-cold xm create -q /etc/xen/cmpguest.cfg
ls -l /var/cache/xm-rs/kernels || fail "xm create did not fill its kernel cache"
i=1
while [ $i -le $RUNS ]; do
    timed xl "xl-$i" xl create -q /etc/xen/cmpguest.cfg
    timed xm "xm-warm-$i" xm create -q /etc/xen/cmpguest.cfg
    i=$((i + 1))
done
timed xm xm-wait-connected xm create -q --wait-connected /etc/xen/cmpguest.cfg

# Where the time goes (for information, outside the timed runs): starting xm at all (its
# version), process start plus config evaluation (a dry run), then one more cached create
# with its phases logged.
t0=$(now_ms)
xm --version > /dev/null || fail "xm --version failed"
t1=$(now_ms)
result xm-vs-xl-process-start-ms $((t1 - t0))
t0=$(now_ms)
xm create -q -n /etc/xen/cmpguest.cfg > /dev/null || fail "xm create -n failed"
t1=$(now_ms)
result xm-vs-xl-dry-run-ms $((t1 - t0))
t0=$(now_ms)
NO_COLOR=1 RUST_LOG=xm_rs=debug,domain_builder=debug xm create -q /etc/xen/cmpguest.cfg \
    > /tmp/create.trace 2>&1 || { cat /tmp/create.trace; fail "traced xm create failed"; }
t1=$(now_ms)
echo "XM-PHASES (one cached create with phase logging; $((t1 - t0)) ms from the shell, ended at $(date -u +%T.%N))"
grep 'phase done\|backend ready\|config loaded\|domain created' /tmp/create.trace
xm destroy cmpguest || fail "destroying the traced create's domain failed"
domain_gone_wait cmpguest 30 || fail "traced: cmpguest still there"
mark xm-vs-xl-end

echo "XM-VS-XL-TABLE (ms; ratio = ours / xl median)"
awk '
    { t[$1] = $2 }
    /^xl-/ { xl[++nx] = $2 }
    /^xm-warm-/ { warm[++nw] = $2 }
    function median(a, n,   i, j, x) {
        for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END {
        mx = median(xl, nx); mw = median(warm, nw)
        printf "%-28s %8s %8s\n", "create of the same guest", "ms", "ratio"
        printf "%-28s %8d %8s\n", "xl create (median)", mx, "1.00"
        printf "%-28s %8d %8.2f\n", "xm create, cold kernel", t["xm-cold"], t["xm-cold"] / mx
        printf "%-28s %8d %8.2f\n", "xm create, cached (median)", mw, mw / mx
        printf "%-28s %8d %8.2f\n", "xm create --wait-connected", t["xm-wait-connected"], t["xm-wait-connected"] / mx
        printf "RESULT xm-vs-xl ratio_cold=%.3f ratio_warm=%.3f goal=0.100 %s\n", t["xm-cold"] / mx, mw / mx, (mw / mx <= 0.1 ? "met" : "not-met")
    }' /tmp/times
xl list | awk 'NR > 2 { exit 1 }' || fail "a domain is left"
echo "XM-VS-XL-DONE"
