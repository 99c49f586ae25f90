#!/bin/bash
# Harness self-test: a scenario whose guest never prints the marker it waits for must make
# lab.sh fail within the scenario's timeout, with a verdict naming the scenario and the marker.
set -euo pipefail
LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${LAB_OUT:-$LAB_DIR/../../target/lab-selftest}
start=$SECONDS
rc=0
LAB_OUT=$out "$LAB_DIR/lab.sh" selftest-missing-marker > "$out.log" 2>&1 || rc=$?
elapsed=$((SECONDS - start))
verdict=$(grep -F 'selftest-missing-marker:' "$out/summary.txt" 2>/dev/null | tail -1 || true)
echo "selftest: lab.sh exited $rc after ${elapsed}s; verdict:${verdict:- (none)}"
ok=1
[ "$rc" = 1 ] || { echo "selftest: FAIL: lab.sh should exit 1 on a failed scenario, got $rc"; ok=0; }
grep -q "FAIL selftest-missing-marker: timed out after 40 s; missing marker(s): '\[selftest\] THIS-MARKER-IS-NEVER-PRINTED'" <<< "$verdict" ||
    { echo "selftest: FAIL: the verdict does not name the timeout and the missing marker"; ok=0; }
# the scenario's own timeout fired in dom0, not the host's backstop or QEMU's hard limit
grep -q '@@SCENARIO-TIMEOUT selftest-missing-marker after 40s' "$out"/boot-*/serial.log ||
    { echo "selftest: FAIL: dom0 did not enforce the scenario timeout"; ok=0; }
if [ $ok = 1 ]; then echo "selftest: 1 passed, 0 failed"; exit 0; fi
echo "selftest: log in $out.log"; tail -30 "$out.log"; echo "selftest: 0 passed, 1 failed"; exit 1
