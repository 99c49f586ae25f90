# shellcheck shell=bash
# Boot one lab machine and judge its scenarios from the serial log, live.
#
# The serial log ($LAB_OUT/boot-N-X/serial.log) has every line prefixed with the host wall
# clock relative to QEMU's start ("  12.345 text"). dom0's /init prints
#   @@SCENARIO-BEGIN name timeout=T   ...   @@SCENARIO-END name rc=N
# around each scenario. A scenario passes when it exits 0 and every "# lab-expect:" line of
# it appeared between the two. The host kills the machine when dom0 does not reach its first
# scenario in LAB_BOOT_BUDGET s or a scenario overruns its timeout by LAB_BACKSTOP s.

now_us() { echo "${EPOCHREALTIME/./}"; }
fmt_s() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }  # µs -> "s.cc"

# set_status NAME PASS|FAIL REASON: record a scenario's verdict for the report.
set_status() {
    # fields are separated by US (0x1f): a tab would collapse an empty reason under read
    printf '%s\x1f%s\x1f%s\x1f%s\n' "$2" "$3" "${SCN_BEGIN[$1]:-}" "${SCN_END[$1]:-}" > "$LAB_OUT/status/$1"
}

# missing_markers NAME: the expected markers of NAME not present in its section of the log.
missing_markers() {
    local m miss=()
    while IFS= read -r m; do
        [ -n "$m" ] || continue
        grep -qF -- "$m" "$LAB_OUT/sections/$1.log" 2>/dev/null || miss+=("'$m'")
    done < <(scenario_directive "$LAB_DIR/scenarios/$1.sh" expect)
    echo "${miss[*]}"
}

finish_scenario() {  # finish_scenario NAME RC TIMED_OUT
    local name=$1 rc=$2 timed_out=$3 miss reason=
    miss=$(missing_markers "$name")
    if [ "$timed_out" = 1 ]; then
        reason="timed out after $(scenario_timeout "$name") s"
    elif [ "$rc" != 0 ]; then
        reason="exited with status $rc"
    fi
    [ -n "$miss" ] && reason="${reason:+$reason; }missing marker(s): $miss"
    if [ -z "$reason" ]; then
        set_status "$name" PASS ""
        lab_log "scenario $name: PASS"
    else
        set_status "$name" FAIL "$reason"
        lab_log "scenario $name: FAIL: $reason"
    fi
}

boot_group() {  # boot_group INDEX XENSTORED SCENARIO...
    local idx=$1 xs=$2; shift 2
    local dir=$LAB_OUT/boot-$idx-$xs s total=0
    mkdir -p "$dir" "$LAB_OUT/status" "$LAB_OUT/sections"
    build_dom0_group "$LAB_BUILD/group-$idx.cpio.gz" "$xs" "$@"
    cat "$LAB_BUILD/dom0-base.cpio.gz" "$LAB_BUILD/group-$idx.cpio.gz" > "$dir/dom0.cpio.gz"
    local mem=$LAB_QEMU_MEM want
    for s in "$@"; do
        total=$((total + $(scenario_timeout "$s") + 15))
        # lab-ram: a scenario whose guests need more than the default machine asks for it.
        want=$(scenario_directive "$LAB_DIR/scenarios/$s.sh" ram | head -1)
        [ -z "$want" ] || [[ $want =~ ^[0-9]+$ ]] || lab_die "scenario $s: lab-ram must be MiB, not '$want'"
        [ -n "$want" ] && [ "$want" -gt "$mem" ] && mem=$want
    done
    local qemu_timeout=$((LAB_BOOT_BUDGET + total + 60))

    local xen_cmdline="console=com1 com1=115200,8n1 dom0_mem=${LAB_DOM0_MEM}M,max:${LAB_DOM0_MEM}M loglvl=all guest_loglvl=all console_timestamps=boot bootscrub=0 ${LAB_XEN_EXTRA:-}"
    local dom0_cmdline="console=hvc0 earlyprintk=xen rdinit=/init panic=5"
    local qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -m "$mem"
        -smp "$LAB_SMP" -display none -monitor none -serial stdio -no-reboot -nic none
        -kernel "$LAB_BUILD/xen" -append "$xen_cmdline"
        -initrd "$LAB_VMLINUZ $dom0_cmdline,$dir/dom0.cpio.gz"
        -fsdev "local,id=fs0,path=$LAB_OUT/share,security_model=none"
        -device virtio-9p-pci,fsdev=fs0,mount_tag=hostshare)
    printf '%q ' "${qemu[@]}" > "$dir/qemu-cmdline.txt"
    lab_log "boot $idx (xenstored=$xs): $* — QEMU -m $mem, dom0 ${LAB_DOM0_MEM}M, hard limit ${qemu_timeout}s"

    rm -f "$dir/serial.fifo"; mkfifo "$dir/serial.fifo"
    local t0; t0=$(now_us)
    timeout --kill-after=10 "$qemu_timeout" "${qemu[@]}" < /dev/null > "$dir/serial.fifo" 2> "$dir/qemu.stderr" &
    local qpid=$!
    exec 3< "$dir/serial.fifo"
    exec 4> "$dir/serial.log"

    declare -gA SCN_BEGIN=() SCN_END=()
    local line chunk partial= now rel cur= deadline=$((t0 + LAB_BOOT_BUDGET * 1000000)) killed=
    local verbose=${LAB_VERBOSE:-} ended=() lab_done=
    while :; do
        if IFS= read -r -t 1 chunk <&3; then
            line=$partial$chunk; partial=
        else
            local rc=$?
            if [ $rc -gt 128 ]; then partial+=$chunk; line=
            else [ -n "$partial$chunk" ] && line=$partial$chunk || break; partial=; chunk=; fi
        fi
        now=$(now_us)
        if [ -n "$line" ]; then
            line=${line//$'\r'/}
            rel=$(fmt_s $((now - t0)))
            printf '%8s %s\n' "$rel" "$line" >&4
            [ -n "$cur" ] && printf '%s\n' "$line" >> "$LAB_OUT/sections/$cur.log"
            if [ -n "$verbose" ] || [ -n "$cur" ] || [[ $line == @@* ]]; then
                printf '%8s %s\n' "$rel" "$line" >&2
            fi
            case $line in
                "@@SCENARIO-BEGIN "*)
                    read -r _ cur _ <<< "$line"
                    : > "$LAB_OUT/sections/$cur.log"
                    SCN_BEGIN[$cur]=$((now - t0))
                    deadline=$((now + ($(scenario_timeout "$cur") + LAB_BACKSTOP) * 1000000)) ;;
                "@@SCENARIO-END "*)
                    local name erc timed_out=0
                    read -r _ name erc _ <<< "$line"; erc=${erc#rc=}
                    grep -q "^@@SCENARIO-TIMEOUT $name " "$LAB_OUT/sections/$name.log" && timed_out=1
                    SCN_END[$name]=$((now - t0))
                    finish_scenario "$name" "$erc" "$timed_out"
                    ended+=("$name"); cur=
                    deadline=$((now + LAB_BOOT_BUDGET * 1000000)) ;;
                "@@LAB-SETUP-FAILED"*)
                    for s in "$@"; do SCN_END[$s]=$((now - t0)); set_status "$s" FAIL "dom0 set-up failed: ${line#@@LAB-SETUP-FAILED }"; done
                    ended=("$@") ;;
                "@@SCENARIO-TIMEOUT "*|"@@SCENARIO-LEFTOVER "*)
                    # dom0 is cleaning up after the scenario (destroying a large domain is
                    # slow under emulation): give it time before the backstop fires
                    deadline=$((now + 120 * 1000000)) ;;
                "@@LAB-DONE"*) lab_done=1 ;;
            esac
        fi
        if [ "$now" -gt "$deadline" ] && [ -z "$killed" ]; then
            killed=1
            if [ -n "$cur" ]; then
                SCN_END[$cur]=$((now - t0))
                local miss; miss=$(missing_markers "$cur")
                set_status "$cur" FAIL "timed out after $(scenario_timeout "$cur") s and dom0 did not stop it (host backstop ${LAB_BACKSTOP} s)${miss:+; missing marker(s): $miss}"
                lab_log "scenario $cur: FAIL: host backstop hit; killing QEMU"
                ended+=("$cur")
            else
                lab_log "dom0 made no progress for ${LAB_BOOT_BUDGET} s; killing QEMU"
            fi
            kill "$qpid" 2>/dev/null || true
        fi
    done
    exec 3<&- 4>&-
    local qrc=0; wait "$qpid" || qrc=$?
    local t1; t1=$(now_us)
    rm -f "$dir/serial.fifo"
    for s in "$@"; do
        [[ " ${ended[*]} " == *" $s "* ]] && continue
        SCN_END[$s]=$((t1 - t0))
        local why="never started"
        [ -n "${SCN_BEGIN[$s]:-}" ] && why="did not finish"
        [ "$qrc" = 124 ] && why="$why (QEMU killed by its ${qemu_timeout}s limit)"
        [ -n "$lab_done" ] || why="$why; dom0 did not complete (see $dir/serial.log)"
        set_status "$s" FAIL "$why"
        lab_log "scenario $s: FAIL: $why"
    done
    boot_summary "$dir" "$idx" "$xs" "$qrc" $((t1 - t0)) "$@" > "$dir/summary.txt"
}

# boot_summary DIR IDX XS QEMU_RC WALL_US SCENARIO...: the timing summary of one boot.
boot_summary() {
    local dir=$1 idx=$2 xs=$3 qrc=$4 wall=$5 s; shift 5
    first() { awk -v p="$1" 'index($0, p) {print $1; exit}' "$dir/serial.log"; }
    at() { local t; t=$(first "$1"); printf '%-26s %9s\n' "$2" "${t:-(not seen)}${t:+ s}"; }
    echo "boot $idx (xenstored=$xs): QEMU exit status $qrc, wall $(fmt_s "$wall") s"
    echo "  times from QEMU start (host wall clock):"
    at "Xen version 4." "  Xen banner"
    at "Linux version" "  dom0 kernel banner"
    at "@@MARK dom0-init" "  dom0 /init"
    at "@@MARK xenstored-up" "  xenstored up"
    at "@@MARK control-plane-up" "  control plane up"
    for s in "$@"; do
        local st reason b e
        IFS=$'\x1f' read -r st reason b e < "$LAB_OUT/status/$s"
        printf '  %-4s %-32s %8s s -> %8s s  (%s s)\n' "$st" "$s" "$(fmt_s "${b:-0}")" "$(fmt_s "${e:-0}")" \
            "$(fmt_s $(( ${e:-0} - ${b:-0} )))"
        [ -n "$reason" ] && echo "       $reason"
        # when each marker it expects and each of its @@MARK lines first showed up
        local m t
        while IFS= read -r m; do
            [ -n "$m" ] || continue
            t=$(awk -v p="$m" -v b="$(fmt_s "${b:-0}")" '$1 + 0 >= b + 0 && index($0, p) {print $1; exit}' "$dir/serial.log")
            printf '       %-40s %s\n' "$m" "${t:-(not seen)}${t:+ s}"
        done < <(scenario_directive "$LAB_DIR/scenarios/$s.sh" expect)
        awk -v b="$(fmt_s "${b:-0}")" -v e="$(fmt_s "${e:-0}")" \
            '$1 + 0 >= b + 0 && $1 + 0 <= e + 0 && ($2 == "@@MARK" || $2 == "@@RESULT") {t = $1; $1 = ""; printf "       %-40s %s s\n", substr($0, 2), t}' "$dir/serial.log"
    done
}

# report SCENARIO...: print every boot's summary and the verdicts; exit 1 on any failure.
report() {
    local s st reason pass=0 fail=0 verdicts=
    for s in "$@"; do
        IFS=$'\x1f' read -r st reason _ < "$LAB_OUT/status/$s"
        verdicts+=$(printf '  %-4s %s%s' "$st" "$s" "${reason:+: $reason}")$'\n'
        if [ "$st" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    done
    {
        echo "xm-rs lab run $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "packages: $(tr '\n' ' ' < "$LAB_MANIFEST")"
        cat "$LAB_OUT"/boot-*/summary.txt
        echo "verdicts:"
        printf '%s' "$verdicts"
        echo "logs: $LAB_OUT"
        echo "lab: $pass passed, $fail failed"
    } | tee "$LAB_OUT/summary.txt"
    [ "$fail" = 0 ] || exit 1
}
