#!/usr/bin/env bash
# Kafka Connect (distributed), Kafka Streams (at_least_once and exactly_once_v2, the latter also
# after kill -9), Kafka's TransactionalMessageCopier (random aborts, kill -9) and
# LogCompactionTester, unchanged, against
# this broker: starts a single node (free port, fresh data dir, log cleaner backoff 1 s, 1 MiB
# segments: the compaction tester's topics take the broker's default segment size, and only
# rolled segments are cleaned) and runs compat-tests/apps/run.sh against it (see there for the
# steps; APPS_STEPS picks some); with --cluster, against the three-node cluster that
# scripts/start-cluster.sh runs (127.0.0.1:9092-9094, 1 GiB segments: the compaction tester's
# reduction is a SKIP there), with replication factor 3 (the compaction tester's topics have 1,
# which the cluster's min_insync_replicas 2 must not refuse: Kafka does not).
# Usage: scripts/test-apps.sh [--no-build] [--cluster]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=1
CLUSTER=0
for a in "$@"; do
    case "$a" in
        --no-build) BUILD=0 ;;
        --cluster) CLUSTER=1 ;;
        *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done
[[ $BUILD -eq 1 ]] && cargo build --release
command -v javac >/dev/null || apt-get install -y -q openjdk-17-jdk-headless >&2
command -v mvn >/dev/null || apt-get install -y -q maven >&2
bash compat-tests/apps/run.sh --build
export APPS_REQUIRE_COMPACTION=1
if [[ $CLUSTER -eq 1 ]]; then
    COMPAT_REPLICATION_FACTOR=3 bash compat-tests/apps/run.sh 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 \
        "$(mktemp -d "${TMPDIR:-/tmp}/apps-cluster.XXXXXX")"
    exit $?
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/apps.XXXXXX")"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$WORK/broker.json" <<JSON
{"data_dir": "$WORK/data", "server": {"host": "127.0.0.1", "port": $PORT, "log_file": "$WORK/broker.log"},
 "segment_size": 1048576, "cleaner": {"backoff": "1s"}}
JSON
export APPS_REQUIRE_TESTER_REDUCTION=1
target/release/broker --config "$WORK/broker.json" >"$WORK/broker.stdout" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
echo "# broker log: $WORK/broker.log"
bash compat-tests/apps/run.sh "127.0.0.1:$PORT" "$WORK/apps"
