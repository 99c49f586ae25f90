#!/bin/bash
# The main job, shown live: boot real Xen 4.17 with a Debian dom0 under QEMU and create a
# PV guest with a disk and a bridged NIC, its console streamed to this terminal.
# (Installs what it needs; see tests/lab/README.md.)
set -euo pipefail
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_VERBOSE=${LAB_VERBOSE:-1} LAB_OUT=${LAB_OUT:-$LAB_DIR/../../target/lab-demo}
# Until `xm create` lands (issue 6) the demo is the xl-baseline scenario: Debian's xl as the peer.
exec "$LAB_DIR/lab.sh" xl-baseline
