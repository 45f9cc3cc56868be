#!/usr/bin/env bash
# W6 for this broker: replicated acks=all throughput against the same run at replication
# factor 1. Starts a private three-node cluster (brokers on 29092-29094, Raft on
# 28001-28003, data in target/bench-replicated/), creates `rf1` (replication factor 1) and
# `rf3` (replication factor 3, min.insync.replicas 2), each with one partition led by node
# 1, and runs Kafka's ProducerPerformance (acks=all, 1 KiB records, idempotent producer as
# by default) against each, alternating, PAIRS times. Prints each run and the median ratio.
# Usage: scripts/bench/replicated.sh [records per run, default 300000] [pairs, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS="${1:-300000}"
PAIRS="${2:-3}"
cargo build --release --quiet
WORK="target/bench-replicated"
rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
members='"127.0.0.1:28001", "127.0.0.1:28002", "127.0.0.1:28003"'
for i in 1 2 3; do
    cat > "$WORK/node$i.json" <<EOF
{"data_dir": "$WORK/data$i", "server": {"host": "127.0.0.1", "port": "2909$((i + 1))", "log_file": "$WORK/node$i.log"},
 "cluster": {"enabled": true, "node_id": $i, "raft_address": "127.0.0.1:2800$i",
             "initial_members": [$members], "data_dir": "$WORK/raft$i"}}
EOF
    target/release/broker -config="$WORK/node$i.json" 2>"$WORK/node$i.stderr" &
    PIDS+=($!)
done
BOOT=127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094
tool() { scripts/kafka-reference.sh run-tool "$@"; }
for _ in $(seq 60); do
    if tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --list >/dev/null 2>&1; then break; fi
    sleep 1
done
tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create --topic rf1 \
    --replica-assignment 1 >/dev/null
tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create --topic rf3 \
    --replica-assignment 1:2:3 --config min.insync.replicas=2 >/dev/null 2>&1 \
    || tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --create --topic rf3 \
        --partitions 1 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOT" --describe --topic rf3
run() {  # run TOPIC -> MB/s (the tool's summary line goes to stderr and runs.txt)
    local line
    line="$(tool org.apache.kafka.tools.ProducerPerformance --topic "$1" --num-records "$RECORDS" \
        --record-size 1024 --throughput -1 \
        --producer-props bootstrap.servers="$BOOT" acks=all linger.ms=5 2>/dev/null | tail -1)"
    echo "$1: $line" | tee -a "$WORK/runs.txt" >&2
    echo "$line" | sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/'
}
run rf1 >/dev/null  # warm-up
ratios=()
for pair in $(seq "$PAIRS"); do
    a=$(run rf1)
    b=$(run rf3)
    r=$(python3 -c "print(round($b / $a, 3))")
    echo "pair $pair: rf1 $a MB/s, rf3 $b MB/s, rf3/rf1 $r"
    ratios+=("$r")
done
python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'W6 rf3/rf1 acks=all median {statistics.median(v)} [{min(v)}-{max(v)}]')" "${ratios[@]}"
