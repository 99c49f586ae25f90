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

# --- guests that boot like a distribution from LVM (scenarios need
#     "# lab-packages: lvm2 libdevmapper-event1.02.1 libdevmapper1.02.1 libaio1 e2fsprogs"
#     "# lab-bins: /sbin/lvm /sbin/mke2fs" and LAB_LVM_SIZE_MB of dom0 RAM at most, sparse)

# ensure_vg VG SIZE_MB: a volume group of at least SIZE_MB on sparse loop-backed files (created
# once; grown when a later scenario needs more).
ensure_vg() {
    local vg=$1 size=$2 img=/var/lib/xen/$1.pv loop
    vgs_lvm() { lvm vgs --noheadings -o vg_name 2>/dev/null | tr -d ' '; }
    if vgs_lvm | grep -qx "$vg"; then
        # an earlier scenario made it smaller than this one needs: add a volume for the rest
        local have
        have=$(lvm vgs --noheadings --units m --nosuffix -o vg_size "$vg" | tr -d ' ' | cut -d. -f1)
        [ "$have" -ge $((size - 8)) ] && return 0
        img=/var/lib/xen/$vg-grow-$have.pv
        truncate -s "$((size - have))M" "$img"
        loop=$(/usr/sbin/losetup --find --show "$img") || fail "losetup for $img"
        lvm pvcreate -q "$loop" >/dev/null || fail "pvcreate $loop"
        lvm vgextend -q "$vg" "$loop" >/dev/null || fail "vgextend $vg"
        return 0
    fi
    mkdir -p /etc/lvm /run/lvm /run/lock/lvm
    # no udev in the lab's dom0: LVM makes its /dev nodes itself
    cat > /etc/lvm/lvm.conf <<LVM
activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 monitoring = 0 }
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" }
global { use_lvmetad = 0 }
LVM
    truncate -s "${size}M" "$img"
    # busybox sh prefers its own applets: name util-linux losetup by its path
    loop=$(/usr/sbin/losetup --find --show "$img") || fail "losetup for $img"
    lvm pvcreate -q "$loop" >/dev/null || fail "pvcreate $loop"
    lvm vgcreate -q "$vg" "$loop" >/dev/null || fail "vgcreate $vg"
}

# setup_lvm_guest VG NAME ROOT_MB SWAP_MB IP/PREFIX PEER: volumes VG/NAME.root (ext3, holding
# the lab's root filesystem with its network settings) and VG/NAME.swap (mkswap'ed).
setup_lvm_guest() {
    local vg=$1 name=$2 root_mb=$3 swap_mb=$4 ip=$5 peer=$6 dir=/tmp/rootfs-$2
    # an earlier scenario may have made the same server: start from fresh volumes
    lvm lvremove -q -f "$vg/$name.root" "$vg/$name.swap" >/dev/null 2>&1
    lvm lvcreate -q -y -Zn -Wn -n "$name.root" -L "${root_mb}M" "$vg" >/dev/null || fail "lvcreate $vg/$name.root"
    lvm lvcreate -q -y -Zn -Wn -n "$name.swap" -L "${swap_mb}M" "$vg" >/dev/null || fail "lvcreate $vg/$name.swap"
    rm -rf "$dir"; mkdir -p "$dir"
    tar -xf /lab/guest/rootfs.tar -C "$dir" || fail "unpacking the guest root filesystem"
    printf 'LAB_IP=%s\nLAB_PEER=%s\n' "$ip" "$peer" > "$dir/etc/lab-net.conf"
    /sbin/mke2fs -q -F -t ext3 -L "$name-root" -d "$dir" "/dev/$vg/$name.root" || fail "mke2fs on /dev/$vg/$name.root"
    mkswap "/dev/$vg/$name.swap" >/dev/null || fail "mkswap /dev/$vg/$name.swap"
    rm -rf "$dir"
}

# install_boot_files: the guest kernel and the root-disk initrd where Debian keeps a kernel,
# /boot/vmlinuz-$(uname -r) and /boot/initrd.img-$(uname -r) (dom0 and guest share a kernel).
install_boot_files() {
    mkdir -p /boot
    cp /lab/guest/vmlinuz "/boot/vmlinuz-$(uname -r)"
    cp /lab/guest/initrd-rootdisk.gz "/boot/initrd.img-$(uname -r)"
}

# busybox_guest_cfg NAME MAC: writes /etc/xen/NAME.cfg (xl syntax) for the lab's busybox
# guest with a fresh 16 MB file-backed disk (/var/lib/xen/NAME.img, xvda) and a vif on
# xenbr0 with MAC; the guest writes to the disk, pings dom0 and powers off.
busybox_guest_cfg() {
    dd if=/dev/zero of="/var/lib/xen/$1.img" bs=1M count=16 2>/dev/null
    cat > "/etc/xen/$1.cfg" <<CFG
name    = "$1"
type    = "pv"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init panic=1 quiet lab.disk=xvda lab.net=10.99.0.2/24 lab.ping=10.99.0.1"
memory  = 128
vcpus   = 1
on_crash = "destroy"
disk    = [ 'file:/var/lib/xen/$1.img,xvda,w' ]
vif     = [ 'bridge=xenbr0,mac=$2' ]
CFG
}

# guest_wrote_disk NAME: the busybox guest's marker is on /var/lib/xen/NAME.img.
guest_wrote_disk() {
    head -c 30 "/var/lib/xen/$1.img" | grep -q XM-RS-LAB-WROTE-THIS-FROM-DOMU
}

# tiny_pv_cfg NAME MODE [LINE...]: /etc/xen/NAME.cfg for the lab's tiny PV kernel ($IMAGE, which
# the scenario sets) in 32 MiB, told what to do by extra="tinypv.MODE" (no extra if MODE is
# empty), then each LINE verbatim (on_* actions, disks, vifs).
tiny_pv_cfg() {
    local name=$1 mode=$2 line; shift 2
    {
        echo "name   = \"$name\""
        echo "kernel = \"$IMAGE\""
        echo "memory = 32"
        [ -z "$mode" ] || echo "extra  = \"tinypv.$mode\""
        for line in "$@"; do echo "$line"; done
    } > "/etc/xen/$name.cfg"
}

# state_wait PATH VALUE SECONDS: wait until xenstore node PATH reads VALUE.
state_wait() {
    local i=0
    while [ "$(xenstore-read "$1" 2>/dev/null)" != "$2" ]; do
        [ $i -ge $(($3 * 10)) ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

# domain_wait NAME SECONDS: wait until a domain called NAME exists (guest_wait gives up as soon
# as the domain is missing, so use this first when the domain is being created in the background).
domain_wait() {
    local i=0 max=$(( $2 * 10 ))
    until xl domid "$1" >/dev/null 2>&1; do
        [ $i -ge $max ] && return 1
        sleep 0.1; i=$((i + 1))
    done
}

# --- the xm-rs lifecycle daemon in scenarios -------------------------------------------------
# daemon_scenario LOG: where `xm daemon` logs; the daemon is stopped (and LOG's tail shown)
# when the scenario exits.
daemon_scenario() {
    DLOG=$1; DPID=
    : > "$DLOG"
    trap stop_daemon EXIT
    trap 'stop_daemon; exit 1' INT TERM HUP
}
# start_daemon ARGS...: `xm daemon --foreground ARGS` in the background; waits until it holds
# its pid file (DPID is its pid).
start_daemon() {
    xm daemon --foreground "$@" >>"$DLOG" 2>&1 &
    DPID=$!
    local i=0
    while [ "$(cat /run/xm-rs/daemon.pid 2>/dev/null)" != "$DPID" ]; do
        kill -0 "$DPID" 2>/dev/null || { cat "$DLOG"; fail "xm daemon exited at start"; }
        [ $i -ge 200 ] && { cat "$DLOG"; fail "xm daemon did not take its pid file"; }
        sleep 0.1; i=$((i + 1))
    done
}
stop_daemon() {
    [ -n "$DPID" ] || return 0
    kill "$DPID" 2>/dev/null; DPID=
    echo "--- daemon log (last 40 lines)"; tail -40 "$DLOG"
}
# wait_log NAME PATTERN SECONDS: until `xm log NAME` shows PATTERN (grep regex).
wait_log() {
    local i=0
    while ! xm log "$1" | grep -q -- "$2"; do
        [ $i -ge $(($3 * 5)) ] && { xm log; cat "$DLOG"; return 1; }
        sleep 0.2; i=$((i + 1))
    done
}

