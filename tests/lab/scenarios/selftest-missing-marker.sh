#!/bin/sh
# Harness self-test (not part of --all): a guest that never prints the marker the scenario
# waits for. The harness must FAIL this scenario within its timeout, naming the scenario and
# the missing marker. tests/lab/selftest.sh runs it and checks exactly that.
# lab-timeout: 40
# lab-expect: [selftest] THIS-MARKER-IS-NEVER-PRINTED
. /lab/lib.sh
cat > /etc/xen/selftest.cfg <<CFG
name    = "selftest"
kernel  = "/lab/guest/vmlinuz"
ramdisk = "/lab/guest/initrd.gz"
extra   = "console=hvc0 rdinit=/init quiet lab.end=wait"
memory  = 128
CFG
xl create /etc/xen/selftest.cfg || fail "xl create returned $?"
# waits far longer than the scenario's timeout: dom0 kills it at 40 s
guest_wait selftest THIS-MARKER-IS-NEVER-PRINTED 3600
