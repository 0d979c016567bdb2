#!/usr/bin/env bash
# Stops the daemons tests/slurm/start-cluster.sh started (by the pids in their pid files, newest first), and
# nothing else: daemons that were already running when it started are left alone.
set -uo pipefail

STATE_DIR="${CENTERFACE_SLURM_STATE:-/var/tmp/centerface-slurm}"
LIST="$STATE_DIR/started"
[ -s "$LIST" ] || exit 0

pids=()
while read -r pidfile; do
    [ -n "$pidfile" ] && [ -s "$pidfile" ] && pids=("$(cat "$pidfile")" "${pids[@]}")
done < "$LIST"
for pid in "${pids[@]}"; do
    echo "stop-cluster: stopping $(cat /proc/"$pid"/comm 2>/dev/null) $pid" >&2
    kill "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
done
: > "$LIST"
