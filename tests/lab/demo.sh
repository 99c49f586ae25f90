#!/bin/bash
# The main job, shown live: boot real Xen 4.17 with a Debian dom0 under QEMU, give dom0 the
# seed's LVM volumes, kernel and bridge, and run `xm create -c beijaflor-vm.cfg` with the seed's
# config verbatim: the guest mounts its LVM root, swaps, pings dom0 over xenbr0, and
# `xm shutdown -w` takes it down. The whole serial console is streamed to this terminal.
# (Installs what it needs; see tests/lab/README.md.)
set -euo pipefail
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_VERBOSE=${LAB_VERBOSE:-1} LAB_OUT=${LAB_OUT:-$LAB_DIR/../../target/lab-demo}
exec "$LAB_DIR/lab.sh" xm-create-beijaflor
