# Helpers for the xenstore lab scenarios (copied to /lab/files/xenstore-lab.sh through the
# scenarios' .files lists). POSIX sh for busybox; needs /lab/lib.sh sourced first.

# Our multi-call tools under Xen's names.
xs_setup_our_tools() {
    mkdir -p /tmp/xsrs
    for t in read write ls rm chmod exists list watch; do
        ln -sf /usr/local/bin/xenstore-rs /tmp/xsrs/xenstore-$t
    done
}

XS_TOOL_DIFFS=0
# xs_same CMD ARGS...: run Debian's xenstore-CMD and ours with the same arguments; stdout and
# exit status must match.
xs_same() {
    local cmd=$1; shift
    "xenstore-$cmd" "$@" > /tmp/xs-c.out 2>/tmp/xs-c.err; local rc_c=$?
    "/tmp/xsrs/xenstore-$cmd" "$@" > /tmp/xs-r.out 2>/tmp/xs-r.err; local rc_r=$?
    if [ $rc_c != $rc_r ] || ! cmp -s /tmp/xs-c.out /tmp/xs-r.out; then
        XS_TOOL_DIFFS=$((XS_TOOL_DIFFS + 1))
        echo "XS-TOOL-DIFF xenstore-$cmd $* (debian rc=$rc_c, ours rc=$rc_r)"
        diff /tmp/xs-c.out /tmp/xs-r.out | head -20
        head -3 /tmp/xs-c.err /tmp/xs-r.err
    else
        echo "XS-TOOL-SAME xenstore-$cmd $* rc=$rc_c lines=$(wc -l < /tmp/xs-c.out)"
    fi
}

# xs_same_effect SETUP_CMD...: run a modifying command with Debian's tool, capture the tree,
# reset, run ours, capture again; the trees must match.
xs_same_effect() {
    local cmd=$1; shift
    xenstore-chmod /xstools n0; xenstore-rm /xstools/fx 2>/dev/null
    xenstore-write /xstools/fx/t/u/v 1 /xstools/fx/keep 2
    "xenstore-$cmd" "$@"; local rc_c=$?
    xenstore-ls -f -p /xstools/fx > /tmp/xs-c.tree 2>&1
    xenstore-chmod /xstools n0; xenstore-rm /xstools/fx 2>/dev/null
    xenstore-write /xstools/fx/t/u/v 1 /xstools/fx/keep 2
    "/tmp/xsrs/xenstore-$cmd" "$@"; local rc_r=$?
    xenstore-ls -f -p /xstools/fx > /tmp/xs-r.tree 2>&1
    if [ $rc_c != $rc_r ] || ! cmp -s /tmp/xs-c.tree /tmp/xs-r.tree; then
        XS_TOOL_DIFFS=$((XS_TOOL_DIFFS + 1))
        echo "XS-TOOL-DIFF effect of xenstore-$cmd $* (debian rc=$rc_c, ours rc=$rc_r)"
        diff /tmp/xs-c.tree /tmp/xs-r.tree | head -20
    else
        echo "XS-TOOL-SAME effect of xenstore-$cmd $* rc=$rc_c"
    fi
}

xs_tools_compare() {
    xs_setup_our_tools
    xenstore-write /xstools/a "hello world" /xstools/b/c 'x\ty' /xstools/bin '\001\x7fz\\' /xstools/empty ""
    xenstore-write /xstools/long "$(printf '%0100d' 7)"
    xs_same read /xstools/a
    xs_same read -p /xstools/a /xstools/b/c
    xs_same read -R /xstools/bin
    xs_same read /xstools/bin /xstools/empty
    xs_same read /xstools/none
    xs_same exists /xstools/a
    xs_same exists /xstools/none
    xs_same list /xstools
    xs_same list -p /xstools
    xs_same list /
    xs_same list /xstools/none
    xs_same ls /xstools
    xs_same ls -f /xstools
    xs_same ls -p /xstools
    xs_same ls -f -p /xstools
    xs_same ls /xstools/none
    xs_same ls -f
    xs_same ls
    xs_same_effect rm -t /xstools/fx/t/u/v
    xs_same_effect rm /xstools/fx/t
    xs_same_effect write /xstools/fx/n1 'a\nb' /xstools/fx/n2 '\x41'
    xs_same_effect write -R /xstools/fx/raw 'a\nb'
    xs_same_effect chmod /xstools/fx/t n0 r0
    xs_same_effect chmod -r /xstools/fx/t b0
    xs_same_effect chmod -u /xstools/fx/t/u w0
    # Through /dev/xen/xenbus instead of the socket: dom0's kernel forwards over its ring to
    # the daemon (libxenstore and our client both take XENSTORED_PATH as socket or device).
    export XENSTORED_PATH=/dev/xen/xenbus
    xs_same read /local/domain/0/name
    xs_same ls -f /local/domain/0
    xs_same_effect write /xstools/fx/viadev 'through xenbus'
    unset XENSTORED_PATH
    # Watches: both watchers see the registration event and one write.
    xenstore-watch -n 2 /xstools/watched > /tmp/xs-wc.out & local wc=$!
    /tmp/xsrs/xenstore-watch -n 2 /xstools/watched > /tmp/xs-wr.out & local wr=$!
    sleep 1
    xenstore-write /xstools/watched/x 1
    sleep 1
    kill $wc $wr 2>/dev/null; wait $wc $wr 2>/dev/null
    if cmp -s /tmp/xs-wc.out /tmp/xs-wr.out && [ "$(wc -l < /tmp/xs-wc.out)" = 2 ]; then
        echo "XS-TOOL-SAME xenstore-watch -n 2: $(tr '\n' ' ' < /tmp/xs-wc.out)"
    else
        XS_TOOL_DIFFS=$((XS_TOOL_DIFFS + 1))
        echo "XS-TOOL-DIFF xenstore-watch"; cat /tmp/xs-wc.out; echo ---; cat /tmp/xs-wr.out
    fi
    # argv[0] dispatch and the "xenstore-rs MODE" form give the same answer.
    [ "$(/usr/local/bin/xenstore-rs read /xstools/a)" = "hello world" ] ||
        { XS_TOOL_DIFFS=$((XS_TOOL_DIFFS + 1)); echo "XS-TOOL-DIFF xenstore-rs read form"; }
    xenstore-rm /xstools
    if [ $XS_TOOL_DIFFS = 0 ]; then echo "XS-TOOLS-AGREE"; else echo "XS-TOOLS-DIFFER count=$XS_TOOL_DIFFS"; fi
}

# xs_conformance_and_tools FLAVOUR: the conformance suite, then the tools comparison.
xs_conformance_and_tools() {
    local flavour=$1 out=/tmp/xs-conformance-$1.txt
    mark xs-conformance-start "xenstored=$flavour"
    xs-conformance > "$out" 2>&1
    cat "$out"
    [ -d "$LAB_SHARE" ] && mkdir -p "$LAB_SHARE/results" && cp "$out" "$LAB_SHARE/results/"
    local failed passed
    failed=$(sed -n 's/^SUMMARY .*failed=\([0-9]*\).*/\1/p' "$out")
    passed=$(sed -n 's/^SUMMARY .*passed=\([0-9]*\).*/\1/p' "$out")
    echo "XS-CONFORMANCE failed=${failed:-unknown} passed=${passed:-0} xenstored=$flavour"
    result "xs-conformance-$flavour" "passed=${passed:-0} failed=${failed:-unknown}"
    mark xs-tools-start
    xs_tools_compare
}

# xs_bench FLAVOUR: xs-bench with 0 and 512 idle connections against the system's xenstored
# and, in the same boot and interleaved with it, against a second daemon of ours that serves
# only a socket (no Xen rings). Beside Debian's C daemon this compares the two on one boot,
# free of the boot-to-boot drift C shows (733-1450 reads/s on a quiet host); beside ours it
# shows what serving Xen rings costs a socket client (it should cost nothing).
# RESULT lines go to the share as xs-bench-LABEL; XS-SAME-BOOT lines give the ratios.
xs_bench() {
    local flavour=$1 pid second=
    pid=$(cat /run/xenstored.pid 2>/dev/null || echo 0)
    ulimit -n 4096 2>/dev/null
    mark xs-bench-start "xenstored=$flavour pid=$pid"
    xs_second_daemon_start && second=$(cat /run/xs-second/pid)
    : > /tmp/xs-bench-all.out
    # -c 4: after the single-client loop, 4 clients at once (xs-bench's "clients=4" lines).
    for spec in "0 5000 500" "512 3000 300"; do
        set -- $spec
        xs_bench_one "$flavour" "$pid" -i "$1" -n "$2" -t "$3" -c 4
        [ -n "$second" ] &&
            xs_bench_one ours-socket "$second" -s /run/xs-second/socket -i "$1" -n "$2" -t "$3" -c 4
    done
    [ -n "$second" ] && kill "$second" 2>/dev/null
    xs_same_boot_ratios "$flavour" ours-socket
    # The ring path: dom0's kernel relays /dev/xen/xenbus requests over its xenbus ring
    # (xsd_kva + event channel), as backends and hotplug scripts reach the daemon.
    xs_bench_one "$flavour" "$pid" -s /dev/xen/xenbus -i 0 -n 1000 -t 100
    xs_bench_syscalls "$flavour" "$pid"
    echo "XS-BENCH-DONE xenstored=$flavour"
}

# xs_bench_one LABEL PID XS-BENCH-ARGS...: one xs-bench run; its RESULT lines are recorded
# under xs-bench-LABEL and kept in /tmp/xs-bench-all.out for xs_same_boot_ratios.
xs_bench_one() {
    local label=$1 pid=$2; shift 2
    xs-bench "$@" -p "$pid" > /tmp/xs-bench.out 2>&1
    local rc=$?
    echo "XS-BENCH-RUN $label: xs-bench $*"
    cat /tmp/xs-bench.out
    [ $rc = 0 ] || echo "XS-BENCH-FAILED $label $* rc=$rc"
    grep '^RESULT' /tmp/xs-bench.out | while read -r line; do
        result "xs-bench-$label" "$line"
        echo "$label $line" >> /tmp/xs-bench-all.out
    done
}

# xs_second_daemon_start: our xenstored on the private socket /run/xs-second/socket, no Xen
# rings, holding the node the benchmark reads (as the system's daemon does). Fails, saying
# why, if it does not start.
xs_second_daemon_start() {
    mkdir -p /run/xs-second
    if ! xenstored-rs --no-xen --socket /run/xs-second/socket \
            --pid-file /run/xs-second/pid --log-file /run/xs-second/log; then
        echo "XS-BENCH-FAILED second daemon"; cat /run/xs-second/log; return 1
    fi
    XENSTORED_PATH=/run/xs-second/socket xenstore-write /local/domain/0/name Domain-0
}

# xs_same_boot_ratios SYSTEM SECOND: for each test, idle count and number of concurrent
# clients, the second daemon's ops/s (untimed loop) over the system daemon's, from the
# interleaved runs of this boot.
xs_same_boot_ratios() {
    awk -v sys="$1" -v sec="$2" '
        { label = $1; test = ""; idle = ""; ops = ""; clients = 1
          for (i = 2; i <= NF; i++) {
              split($i, kv, "=")
              if (kv[1] == "test") test = kv[2]
              else if (kv[1] == "idle_conns") idle = kv[2]
              else if (kv[1] == "clients") clients = kv[2]
              else if (kv[1] == "ops_per_s_untimed") ops = kv[2]
          }
          k = test SUBSEP idle SUBSEP clients
          if (test != "") { v[label SUBSEP k] = ops; keys[k] = 1 } }
        END { for (k in keys) { split(k, p, SUBSEP)
                a = v[sys SUBSEP k]; b = v[sec SUBSEP k]
                if (a > 0 && b > 0)
                    printf "XS-SAME-BOOT test=%s idle_conns=%s clients=%s %s=%d %s=%d ratio=%.2f\n", p[1], p[2], p[3], sys, a, sec, b, b / a } }
    ' /tmp/xs-bench-all.out | sort | while read -r line; do
        echo "$line"
        result "xs-same-boot" "${line#XS-SAME-BOOT }"
    done
}

# xs_bench_syscalls FLAVOUR PID: which syscalls the daemon makes per request, from a short
# separate run under `strace -c -f` (never during the timed runs: tracing slows it tenfold).
# 1000 reads and 1000 writes twice each (timed and untimed pass), 100 transactions twice.
xs_bench_syscalls() {
    local flavour=$1 pid=$2 sp
    command -v strace >/dev/null || { echo "XS-BENCH-STRACE unavailable"; return 0; }
    [ "$pid" != 0 ] || return 0
    strace -c -f -p "$pid" -o /tmp/xs-strace.txt 2>/dev/null & sp=$!
    sleep 2
    xs-bench -i 0 -n 1000 -t 100 -W 0 > /tmp/xs-bench-strace.out 2>&1 ||
        echo "XS-BENCH-FAILED under strace"
    kill -INT $sp; wait $sp 2>/dev/null
    # requests: 2x1000 reads + 2x1000 writes + 2x100x3 transaction requests + 2 setup + 1 rm
    echo "XS-BENCH-STRACE xenstored=$flavour requests=4603 (table: strace -c -f of the daemon)"
    cat /tmp/xs-strace.txt
    awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" { printf "  %-16s %.2f per request\n", $NF, $4 / 4603 }' /tmp/xs-strace.txt
    result "xs-bench-$flavour" "strace_syscalls_per_request=$(awk '$NF == "total" { printf "%.2f", $4 / 4603 }' /tmp/xs-strace.txt)"
}

# xs_xl_create_traced FLAVOUR NAME MAC: `xl -vvv create` of the lab's busybox guest (file
# disk + bridged vif), identical on either xenstored so the two can be compared. Where the
# time goes is recorded without adding load while it runs: xl's log lines are time-stamped by
# a bash builtin loop (no fork per line) into a file, the hotplug scripts trace every command
# with $EPOCHREALTIME into a file (BASH_XTRACEFD), and only afterwards are both summarised:
# the libxl phases and the slowest hotplug-script steps. Prints the create time as a RESULT.
xs_xl_create_traced() {
    local flavour=$1 name=$2 mac=$3 common=/etc/xen/scripts/xen-hotplug-common.sh
    busybox_guest_cfg "$name" "$mac"
    rm -f /tmp/hp-trace.log /tmp/xl-create.log
    cp "$common" /tmp/xen-hotplug-common.sh.orig
    # Sourced by both the block and the vif-bridge script: trace them into fd 19.
    sed -i '1a exec 19>>/tmp/hp-trace.log; BASH_XTRACEFD=19; PS4='"'"'+ ${EPOCHREALTIME} $$ ${BASH_SOURCE##*/}:${LINENO} '"'"'; set -x' "$common"
    local xspid ctx0 ctx1 tk0 tk1
    xspid=$(cat /run/xenstored.pid)
    tk0=$(cut -d' ' -f14,15 /proc/$xspid/stat)
    ctx0=$(grep ctxt_switches /proc/$xspid/status | tr -s '\t\n' '  ')
    mark xl-create-start "xenstored=$flavour"
    local t0 t1 rc
    t0=$(now_ms)
    timeout 150 xl -vvv create "/etc/xen/$name.cfg" 2>&1 |
        bash -c 'while IFS= read -r l; do printf "%s %s\n" "$EPOCHREALTIME" "$l"; done' > /tmp/xl-create.log
    rc=$(xl domid "$name" >/dev/null 2>&1 && echo 0 || echo 1)
    t1=$(now_ms)
    mark xl-create-returned "xenstored=$flavour"
    cp /tmp/xen-hotplug-common.sh.orig "$common"
    tk1=$(cut -d' ' -f14,15 /proc/$xspid/stat)
    ctx1=$(grep ctxt_switches /proc/$xspid/status | tr -s '\t\n' '  ')
    echo "xenstored ($flavour) utime/stime ticks before: $tk0 after: $tk1; ctx before: $ctx0 after: $ctx1"
    result "xs-xl-create-disk-vif-ms-$flavour" $((t1 - t0))
    echo "--- libxl phases (seconds since xl start; gaps >= 0.5 s)"
    awk 'NR == 1 { s = $1; p = $1 } { d = $1 - p; if (d >= 0.5) printf "  +%6.2f  gap %5.2f before: %s\n", $1 - s, d, substr($0, index($0, " ") + 1, 150); p = $1 }' /tmp/xl-create.log
    awk 'NR == 1 { s = $1 } END { printf "  xl log lines %d, last at +%.2f s\n", NR, $1 - s }' /tmp/xl-create.log
    grep -E 'calling hotplug script|No hotplug script|wanted state|xc_dom_release|running bootloader|forking to execute|console/tty' /tmp/xl-create.log |
        awk 'NR == 1 { s = $1 } { printf "  +%6.2f %s\n", $1 - s, substr($0, index($0, " ") + 1, 140) }'
    echo "--- hotplug scripts: per-script wall time and slowest steps (time until the next traced command)"
    awk '$1 ~ /^\++$/ { if (prev != "") { d = $2 - pt; if (d >= 0.2) printf "%7.2f s  %s\n", d, substr(prev, 1, 160) } prev = $0; pt = $2 }' /tmp/hp-trace.log | sort -rn | head -30
    awk '$1 ~ /^\++$/ { if (!($3 in first)) { first[$3] = $2; order[++n] = $3 } last[$3] = $2 }
         END { for (i = 1; i <= n; i++) printf "  script pid %s: %.2f s from first to last traced command\n", order[i], last[order[i]] - first[order[i]] }' /tmp/hp-trace.log
    awk '{ split($4, f, ":"); c[f[1]]++ } END { for (k in c) printf "  %d traced lines from %s\n", c[k], k }' /tmp/hp-trace.log
    grep -c 'xenstore' /tmp/hp-trace.log | sed 's/^/  traced lines naming xenstore: /'
    [ $rc = 0 ] || { tail -30 /tmp/xl-create.log; return 1; }
    return 0
}

# xs_domain_gone_or_explain NAME DOMID SECONDS: waits (wall clock: one `xl domid` takes most of
# a second under TCG) for xl's monitor to destroy the powered-off guest; when it does not, shows
# what the next investigation needs: Xen's view of the domain, whether xenstore still answers,
# xl's monitor process, and the xenstore daemon's state. (A rare failure with our xenstored: the
# domain halted but was never destroyed; see xenstore/README.md.)
xs_domain_gone_or_explain() {
    local name=$1 domid=$2 deadline=$(( $(now_ms) + $3 * 1000 ))
    while xl domid "$name" >/dev/null 2>&1; do
        if [ "$(now_ms)" -ge $deadline ]; then
            echo "--- $name (domain $domid) still exists: diagnostics"
            timeout 20 xl list -v 2>&1 | sed 's/^/  xl list: /'
            timeout 20 xenstore-read /local/domain/$domid/name 2>&1 | sed 's/^/  xenstore-read name: /'
            timeout 20 xenstore-ls -f /local/domain/0/backend 2>&1 | grep "/$domid/.*/state" | sed 's/^/  /'
            ps | grep '[x]l \|[x]enstored\|[x]enconsoled' | sed 's/^/  ps: /'
            local xs
            for xs in $(pidof xenstored xenstored-rs 2>/dev/null); do
                grep -i 'state\|ctxt' /proc/$xs/status | tr '\n' ' ' | sed "s/^/  xenstored $xs: /"; echo
                ls -l /proc/$xs/fd 2>/dev/null | grep -c . | sed 's/^/  xenstored fds: /'
            done
            grep -i 'xen-dyn\|evtchn' /proc/interrupts | head -20 | sed 's/^/  irq: /'
            tail -20 /var/log/xen/xenstored-rs.log 2>/dev/null | sed 's/^/  xenstored-rs.log: /'
            return 1
        fi
        sleep 0.1
    done
}

# xs_guest_finish FLAVOUR NAME: the busybox guest runs to the end, xl sees it go, its disk write
# is visible in dom0 and (our daemon) its nodes are gone.
xs_guest_finish() {
    local flavour=$1 name=$2 domid
    domid=$(xl domid "$name")
    guest_wait "$name" GUEST-DONE 120 || fail "guest did not print GUEST-DONE"
    xs_domain_gone_or_explain "$name" "$domid" 60 || fail "guest still there 60 s after GUEST-DONE"
    echo "XS-$flavour-DOMAIN-GONE"
    guest_wrote_disk "$name" || fail "dom0 does not see the guest's write on $name.img"
    echo "DOM0-SEES-GUEST-DISK-WRITE"
    sleep 1
    if xenstore-exists "/local/domain/$domid"; then
        xenstore-ls -f "/local/domain/$domid" | head; fail "nodes of dead domain $domid left behind"
    fi
    echo "XS-$flavour-NODES-CLEANED"
}
