#!/bin/sh
# xenstore-bench-c.sh against our xenstored-rs.
# lab-xenstored: ours
# lab-timeout: 900
# lab-packages: strace
# lab-bins: /usr/bin/strace
# lab-expect: XS-BENCH-DONE xenstored=ours
. /lab/lib.sh
. /lab/files/xenstore-lab.sh
xs_bench ours
