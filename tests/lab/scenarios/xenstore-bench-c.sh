#!/bin/sh
# xs-bench (xenstore/src/bin/xs-bench.rs, the Rust twin of lab-recipe/bench/xsbench.c) against
# Debian's C xenstored: read/write/transaction ops/s and p50/p99 latency with 0 and 512 idle
# connections. xenstore-bench-ours.sh measures our daemon in the same lab run.
# lab-timeout: 900
# lab-packages: strace
# lab-bins: /usr/bin/strace
# lab-expect: XS-BENCH-DONE xenstored=debian
. /lab/lib.sh
. /lab/files/xenstore-lab.sh
xs_bench debian
