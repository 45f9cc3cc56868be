#!/usr/bin/env bash
# Starts the three-node cluster of the guide in the background: brokers on 9092-9094,
# Raft on 8001-8003, configs in configs/broker-cluster-node{1,2,3}.json, logs in logs/,
# pids in logs/node{1,2,3}.pid. Waits until a controller is elected and prints it.
# Usage: scripts/start-cluster.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--no-build" ]]; then
    cargo build --release --quiet
fi
BIN=target/release/broker
mkdir -p logs
for i in 1 2 3; do
    pidfile="logs/node$i.pid"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "node $i already running (pid $(cat "$pidfile"))"
        continue
    fi
    "$BIN" -config="configs/broker-cluster-node$i.json" >"logs/node$i.stderr" 2>&1 &
    echo $! >"$pidfile"
    echo "started node $i (pid $!) on 127.0.0.1:909$((i + 1)), raft localhost:800$i"
done

# Wait (bounded) until every node reports the same controller in DescribeCluster/Metadata.
python3 - <<'PY'
import socket, struct, sys, time

def metadata_controller(port):
    # Metadata v1 request with no topics array = null? v1: topics array; -1 means all topics.
    body = struct.pack(">hhih", 3, 1, 1, 5) + b"probe" + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", s.recv(4))[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
    at = 4  # correlation id
    (n,) = struct.unpack_from(">i", data, at); at += 4
    for _ in range(n):
        at += 4
        (hl,) = struct.unpack_from(">h", data, at); at += 2 + hl
        at += 4
        (rl,) = struct.unpack_from(">h", data, at); at += 2 + max(rl, 0)
    (controller,) = struct.unpack_from(">i", data, at)
    return n, controller

deadline = time.time() + 60
while time.time() < deadline:
    try:
        seen = [metadata_controller(p) for p in (9092, 9093, 9094)]
        controllers = {c for _, c in seen}
        if len(controllers) == 1 and -1 not in controllers and all(n == 3 for n, _ in seen):
            print(f"cluster up: 3 brokers, controller is node {controllers.pop()}")
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
print("the cluster did not elect a controller within 60 s; see logs/node*.log", file=sys.stderr)
sys.exit(1)
PY
