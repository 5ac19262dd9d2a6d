# shellcheck shell=bash
# Sourced by scripts/upstreams.sh and scripts/postgres.sh: whether a process
# lives, its start time (to tell a reused pid), and the watchdog that stops
# a script's private servers once the process that started them is gone.
# The sourcing script defines `say MESSAGE` and `cmd_stop DIR`; cmd_stop
# leaves the watchdog alone when PEC_WATCHDOG is set (the watchdog is the
# one calling it).

alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

proc_starttime() {
    # Field 22 of /proc/PID/stat (after the parenthesised comm), to detect pid reuse.
    sed -E 's/^[0-9]+ \(.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

# _watchdog DIR OWNER_PID OWNER_STARTTIME RM(0|1): every 0.5 s, while
# DIR/.running exists, checks the owner; once it is gone (or its pid was
# reused), stops DIR's servers and, with RM=1, deletes DIR.
cmd_watchdog() {
    local dir=$1 owner=$2 start=$3 rm=$4
    echo $$ >"$dir/watchdog.pid"
    trap 'exit 0' TERM
    while [[ -e "$dir/.running" ]]; do
        if ! alive "$owner" || [[ "$(proc_starttime "$owner")" != "$start" ]]; then
            say "owner pid $owner is gone: stopping $dir"
            PEC_WATCHDOG=1 cmd_stop "$dir"
            rm -f "$dir/watchdog.pid"
            if [[ $rm -eq 1 ]]; then
                cd /
                rm -rf "$dir"
            fi
            exit 0
        fi
        sleep 0.5
    done
    rm -f "$dir/watchdog.pid"
}
