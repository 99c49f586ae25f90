#!/bin/sh
# The seed's server, the way Debian's xl can run it (the peer for `xm create beijaflor-vm.cfg`):
# dom0 has volume group vg01 with beijaflor.root (ext3) and beijaflor.swap, the kernel and
# initrd at /boot/*-$(uname -r), bridge xenbr0. xl cannot read the seed config itself (it
# does `import commands`), so this is its xl-syntax equivalent (same extra, verbatim) without
# the vfb (which needs qemu as backend): the guest mounts xvda1 as root, swaps on xvda2, pings dom0 via eth0.
# lab-timeout: 360
# lab-packages: lvm2 libdevmapper-event1.02.1 libdevmapper1.02.1 libaio1 e2fsprogs
# lab-bins: /sbin/lvm /sbin/mke2fs
# lab-expect: [beijaflor-vm] INITRD-ROOT-MOUNTED /dev/xvda1 ext3 ro
# lab-expect: [beijaflor-vm] ROOTFS-UP root=/dev/xvda1 ext3
# lab-expect: [beijaflor-vm] ROOTFS-SWAP-OK xvda2
# lab-expect: [beijaflor-vm] ROOTFS-PING-OK
# lab-expect: [beijaflor-vm] ROOTFS-READY
# lab-expect: [beijaflor-vm] ROOTFS-SHUTDOWN
# lab-expect: XL-BEIJAFLOR-GONE
. /lab/lib.sh
mark lvm-setup-start
ensure_vg vg01 256
setup_lvm_guest vg01 beijaflor 96 32 10.99.0.10/24 10.99.0.1
install_boot_files
lvm lvs vg01
mark lvm-setup-done
krn=$(uname -r)
cat > /etc/xen/beijaflor-xl.cfg <<CFG
name    = "beijaflor-vm"
kernel  = "/boot/vmlinuz-$krn"
ramdisk = "/boot/initrd.img-$krn"
root    = "/dev/xvda1 ro"
extra   = 'console = hvc0 clocksource = jiffies guestname = beijaflor-vm'
memory  = 512
vcpus   = 1
disk    = [ 'phy:/dev/vg01/beijaflor.root,xvda1,w', 'phy:/dev/vg01/beijaflor.swap,xvda2,w' ]
vif     = [ 'bridge=xenbr0' ]
CFG
t0=$(now_ms)
xl create /etc/xen/beijaflor-xl.cfg || fail "xl create returned $?"
result xl-create-beijaflor-ms $(( $(now_ms) - t0 ))
guest_wait beijaflor-vm ROOTFS-READY 120 || fail "beijaflor-vm did not reach ROOTFS-READY"
result xl-beijaflor-create-to-ready-ms $(( $(now_ms) - t0 ))
xl list
t1=$(now_ms)
xl shutdown -w beijaflor-vm || fail "xl shutdown -w returned $?"
result xl-shutdown-w-ms $(( $(now_ms) - t1 ))
domain_gone_wait beijaflor-vm 30 || fail "beijaflor-vm still there after xl shutdown -w"
flush_consoles
echo "XL-BEIJAFLOR-GONE"
