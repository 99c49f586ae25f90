#!/bin/sh
# xenstore-conformance-c.sh booted with our xenstored-rs instead of Debian's C daemon.
# lab-xenstored: ours
# lab-timeout: 240
# lab-expect: XS-CONFORMANCE failed=0
# lab-expect: XS-TOOLS-AGREE
. /lab/lib.sh
. /lab/files/xenstore-lab.sh
xs_conformance_and_tools ours
