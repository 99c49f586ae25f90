#!/bin/sh
# Copy every guest's console log (written by xenconsoled) to dom0's console, prefixed with
# "[domname] ", complete lines only. Runs for the whole boot; a flush request
# (/run/lab/flush-request) is answered by removing the file after a full pass.
dir=/var/log/xen/console state=/run/lab/stream
mkdir -p $state
# unread: the bytes of $f that were not streamed yet
unread() { tail -c +$((off + 1)) "$f" | head -c $((size - off)); }
while :; do
    flush=; [ -e /run/lab/flush-request ] && flush=1
    for f in "$dir"/guest-*.log; do
        [ -f "$f" ] || continue
        name=${f##*/guest-}; name=${name%.log}
        size=$(wc -c < "$f")
        off=$(cat "$state/$name" 2>/dev/null || echo 0)
        [ "$size" -lt "$off" ] && off=0          # log truncated or recreated
        [ "$size" = "$off" ] && continue
        lines=$(unread | wc -l)                  # complete lines only
        [ "$lines" = 0 ] && continue
        unread | head -n "$lines" | tr -d '\r\000' | sed "s/^/[$name] /"
        echo $((off + $(unread | head -n "$lines" | wc -c))) > "$state/$name"
    done
    [ -n "$flush" ] && rm -f /run/lab/flush-request
    sleep 0.2
done
