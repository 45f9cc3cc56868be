#!/usr/bin/env bash
# Stops the nodes started by scripts/start-cluster.sh (SIGTERM, then SIGKILL after 15 s).
# Usage: scripts/stop-cluster.sh [--wipe]   (--wipe also removes data-node*/ and raft-data/)
set -euo pipefail
cd "$(dirname "$0")/.."
for i in 1 2 3; do
    pidfile="logs/node$i.pid"
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        echo "stopped node $i (pid $pid)"
    fi
    rm -f "$pidfile"
done
if [[ "${1:-}" == "--wipe" ]]; then
    rm -rf data-node1 data-node2 data-node3 raft-data
    echo "removed cluster data"
fi
