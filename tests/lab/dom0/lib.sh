# Helpers for lab scenarios, run in dom0 by busybox sh: `. /lab/lib.sh`.
# The host harness reads the serial console: @@MARK lines are timed in its summary, and the
# scenario's "# lab-expect:" lines must all show up between its BEGIN and END markers.
XENBIN=/usr/lib/xen-${LAB_XEN_VERSION:-4.17}/bin
LAB_SHARE=/mnt/host
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$XENBIN
CONSOLE_DIR=/var/log/xen/console

uptime_s() { cut -d' ' -f1 /proc/uptime; }
# now_ms: milliseconds since dom0 boot (busybox date has no %N; /proc/uptime has 10 ms)
now_ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }
mark() { echo "@@MARK $* uptime=$(uptime_s)"; }
fail() { echo "SCENARIO-FAIL: $*"; exit 1; }

# flush_consoles: make the console streamer print everything the guests wrote so far, now.
flush_consoles() {
    local i=0
    touch /run/lab/flush-request
    while [ -e /run/lab/flush-request ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

# guest_wait NAME PATTERN SECONDS: wait until guest NAME's console shows PATTERN (a grep
# regex). Returns 1 on timeout, or when the domain is gone without having printed it.
guest_wait() {
    local name=$1 pat=$2 max=$(( $3 * 10 )) i=0 f=$CONSOLE_DIR/guest-$1.log
    while [ $i -lt $max ]; do
        grep -q -- "$pat" "$f" 2>/dev/null && { flush_consoles; return 0; }
        if [ $((i % 10)) = 9 ] && ! xl domid "$name" >/dev/null 2>&1; then
            sleep 0.5; grep -q -- "$pat" "$f" 2>/dev/null; local rc=$?; flush_consoles; return $rc
        fi
        sleep 0.1; i=$((i + 1))
    done
    flush_consoles
    return 1
}

# domain_gone_wait NAME SECONDS: wait until no domain called NAME exists.
domain_gone_wait() {
    local i=0 max=$(( $2 * 10 ))
    while xl domid "$1" >/dev/null 2>&1; do
        [ $i -ge $max ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

# result NAME VALUE...: record a benchmark/result line for the host (on the 9p share when
# mounted, and on the serial log as "@@RESULT NAME VALUE").
result() {
    local name=$1; shift
    echo "@@RESULT $name $*"
    [ -d "$LAB_SHARE" ] && mkdir -p "$LAB_SHARE/results" && echo "$name $*" >> "$LAB_SHARE/results/results.txt"
}
