#!/bin/sh
# Debian's xl with Debian's C xenstored, traced exactly as xenstore-ours-xl (the comparison).
# lab-timeout: 240
# lab-expect: [xscxl] GUEST-UP
# lab-expect: [xscxl] GUEST-DISK-WRITE-OK
# lab-expect: [xscxl] GUEST-NET-OK eth0 mac=00:16:3e:00:00:03
# lab-expect: [xscxl] GUEST-PING-OK
# lab-expect: [xscxl] GUEST-DONE
# lab-expect: DOM0-SEES-GUEST-DISK-WRITE
# lab-expect: XS-c-DOMAIN-GONE
# lab-expect: XS-c-NODES-CLEANED
. /lab/lib.sh
. /lab/files/xenstore-lab.sh
ps | grep '[x]enstored'
xs_xl_create_traced c xscxl 00:16:3e:00:00:03 || fail "xl create failed"
xs_guest_finish c xscxl
