#!/bin/sh
# The xenstore conformance suite (xs-conformance, the same cases `cargo test -p xenstore` runs
# against our daemon on the host) against Debian's C xenstored, plus our xenstore-* tools
# side by side with Debian's on the same store. xenstore-conformance-ours.sh is the same
# scenario booted with our xenstored: both must pass for the daemons to agree.
# lab-timeout: 240
# lab-expect: XS-CONFORMANCE failed=0
# lab-expect: XS-TOOLS-AGREE
. /lab/lib.sh
. /lab/files/xenstore-lab.sh
xs_conformance_and_tools debian
