#!/usr/bin/env bash
# W6 for this broker: replicated acks=all throughput against the same run at replication
# factor 1. Starts a private three-node cluster (brokers on 29092-29094, Raft on
# 28001-28003, data in target/bench-replicated/), creates `rf1` (replication factor 1) and
# `rf3` (replication factor 3, min.insync.replicas 2), each with one partition led by node
# 1, and runs Kafka's ProducerPerformance (acks=all, 1 KiB records, idempotent producer as
# by default) against each, alternating, PAIRS times. Prints each run and the median ratio.
#
# With --with-kafka, each pair is this broker's three-node cluster and then Apache Kafka's
# (scripts/kafka-reference.sh start-cluster: three combined broker+controller KRaft nodes on
# 39092-39094, controllers on 39192-39194, heap KAFKA_HEAP_OPTS per node, default
# -Xms512m -Xmx512m), only one cluster running at a time. Every cluster is started fresh
# (new data), the same two topics are created the same way, one warm-up run goes to each
# topic, then one measured run to rf1 and one to rf3. Prints per pair both brokers' MB/s,
# rf3 this/Kafka and each one's rf3/rf1, then medians with [min-max]. Durability tier T0:
# neither fsyncs per message (this broker's default flush policy, Kafka's defaults).
# Usage: scripts/bench/replicated.sh [records per run, default 300000] [pairs, default 3]
#                                    [--with-kafka]
set -euo pipefail
cd "$(dirname "$0")/../.."
WITH_KAFKA=0
ARGS=()
for arg in "$@"; do
    case "$arg" in
        --with-kafka) WITH_KAFKA=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option: $arg" >&2; exit 2 ;;
        *) ARGS+=("$arg") ;;
    esac
done
RECORDS="${ARGS[0]:-300000}"
PAIRS="${ARGS[1]:-3}"
cargo build --release --quiet
WORK="target/bench-replicated"
rm -rf "$WORK"
mkdir -p "$WORK"
PIDS=()
KAFKA_UP=0
KAFKA_BASE=39092
KAFKA_BOOT=127.0.0.1:39092,127.0.0.1:39093,127.0.0.1:39094
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
stop_ours() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
stop_kafka() {
    if (( KAFKA_UP )); then
        scripts/kafka-reference.sh stop-cluster "$KAFKA_BASE" 2>>"$WORK/kafka-reference.log" || true
        KAFKA_UP=0
    fi
}
cleanup() {
    stop_ours
    stop_kafka
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BOOT=127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094
start_ours() {  # start_ours DIR: a fresh three-node cluster with its files in DIR
    local dir="$1" i
    local members='"127.0.0.1:28001", "127.0.0.1:28002", "127.0.0.1:28003"'
    mkdir -p "$dir"
    for i in 1 2 3; do
        cat > "$dir/node$i.json" <<EOF
{"data_dir": "$dir/data$i", "server": {"host": "127.0.0.1", "port": "2909$((i + 1))", "log_file": "$dir/node$i.log"},
 "cluster": {"enabled": true, "node_id": $i, "raft_address": "127.0.0.1:2800$i",
             "initial_members": [$members], "data_dir": "$dir/raft$i"}}
EOF
        target/release/broker -config="$dir/node$i.json" 2>"$dir/node$i.stderr" &
        PIDS+=($!)
    done
}
start_kafka() {  # start_kafka DIR: a fresh Apache Kafka three-node cluster, node logs in DIR
    mkdir -p "$1"
    KAFKA_UP=1
    KAFKA_REF_CLUSTER_LOG_DIR="$PWD/$1" scripts/kafka-reference.sh start-cluster "$KAFKA_BASE" \
        >/dev/null 2>>"$WORK/kafka-reference.log" \
        || { tail -n 5 "$WORK/kafka-reference.log" >&2; echo "Apache Kafka cluster did not start" >&2; exit 1; }
}
tool() { scripts/kafka-reference.sh run-tool "$@"; }
create_topics() {  # create_topics BOOTSTRAP [describe]: wait for the cluster, create rf1 and rf3
    local boot="$1"
    for _ in $(seq 60); do
        if tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --list >/dev/null 2>&1; then break; fi
        sleep 1
    done
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --create --topic rf1 \
        --replica-assignment 1 >/dev/null
    tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --create --topic rf3 \
        --replica-assignment 1:2:3 --config min.insync.replicas=2 >/dev/null 2>&1 \
        || tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --create --topic rf3 \
            --partitions 1 --replication-factor 3 --config min.insync.replicas=2 >/dev/null
    if [[ "${2:-}" == describe ]]; then
        tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$boot" --describe --topic rf3
    fi
}
LABEL=""
run() {  # run TOPIC [BOOTSTRAP] -> MB/s (the tool's summary line goes to stderr and runs.txt)
    local line mbs
    line="$(tool org.apache.kafka.tools.ProducerPerformance --topic "$1" --num-records "$RECORDS" \
        --record-size 1024 --throughput -1 \
        --producer-props bootstrap.servers="${2:-$BOOT}" acks=all linger.ms=5 2>/dev/null | tail -1)"
    echo "$LABEL$1: $line" | tee -a "$WORK/runs.txt" >&2
    mbs="$(echo "$line" | sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/')"
    [[ "$mbs" =~ ^[0-9.]+$ ]] || { echo "${LABEL}$1: no throughput in the tool's output" >&2; exit 1; }
    echo "$mbs"
}
median() {  # median V... -> "median [min-max]"
    python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'{round(statistics.median(v), 3)} [{min(v)}-{max(v)}]')" "$@"
}
ratio() { python3 -c "print(round($1 / $2, 3))"; }

if (( ! WITH_KAFKA )); then
    start_ours "$WORK"
    create_topics "$BOOT" describe
    run rf1 >/dev/null  # warm-up
    ratios=()
    for pair in $(seq "$PAIRS"); do
        a=$(run rf1)
        b=$(run rf3)
        r=$(ratio "$b" "$a")
        echo "pair $pair: rf1 $a MB/s, rf3 $b MB/s, rf3/rf1 $r"
        ratios+=("$r")
    done
    python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f'W6 rf3/rf1 acks=all median {statistics.median(v)} [{min(v)}-{max(v)}]')" "${ratios[@]}"
    exit 0
fi

# ---------------------------------------------------------------- --with-kafka
echo "W6 this broker vs Apache Kafka 4.1.1, three nodes on one host each (one cluster at a time),"
echo "ProducerPerformance acks=all linger.ms=5, $RECORDS x 1 KiB records per run, rf3 min.insync.replicas=2,"
echo "tier T0 (no fsync per message); Kafka heap $KAFKA_HEAP_OPTS per node; $(nproc) cores"
ours_rf1=(); ours_rf3=(); kafka_rf1=(); kafka_rf3=(); ours_r=(); kafka_r=(); vs3=(); vs1=()
rows=()
for pair in $(seq "$PAIRS"); do
    describe=""; (( pair == 1 )) && describe=describe
    LABEL="pair $pair this "
    start_ours "$WORK/pair$pair-this"
    create_topics "$BOOT" $describe
    run rf1 >/dev/null  # warm-up
    run rf3 >/dev/null  # warm-up
    a=$(run rf1)
    b=$(run rf3)
    stop_ours
    LABEL="pair $pair Kafka "
    start_kafka "$WORK/pair$pair-kafka"
    create_topics "$KAFKA_BOOT" $describe
    run rf1 "$KAFKA_BOOT" >/dev/null  # warm-up
    run rf3 "$KAFKA_BOOT" >/dev/null  # warm-up
    ka=$(run rf1 "$KAFKA_BOOT")
    kb=$(run rf3 "$KAFKA_BOOT")
    stop_kafka
    ours_rf1+=("$a"); ours_rf3+=("$b"); kafka_rf1+=("$ka"); kafka_rf3+=("$kb")
    ours_r+=("$(ratio "$b" "$a")"); kafka_r+=("$(ratio "$kb" "$ka")")
    vs3+=("$(ratio "$b" "$kb")"); vs1+=("$(ratio "$a" "$ka")")
    row="| $pair | $b | $kb | ${vs3[-1]} | $a | $ka | ${ours_r[-1]} | ${kafka_r[-1]} |"
    rows+=("$row")
    echo "pair $pair: rf3 this $b MB/s, Kafka $kb MB/s, this/Kafka ${vs3[-1]}; rf1 this $a, Kafka $ka; rf3/rf1 this ${ours_r[-1]}, Kafka ${kafka_r[-1]}"
done
echo
echo "| pair | this rf3 MB/s | Kafka rf3 MB/s | rf3 this/Kafka | this rf1 MB/s | Kafka rf1 MB/s | this rf3/rf1 | Kafka rf3/rf1 |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "| median [min-max] | $(median "${ours_rf3[@]}") | $(median "${kafka_rf3[@]}") | $(median "${vs3[@]}") | $(median "${ours_rf1[@]}") | $(median "${kafka_rf1[@]}") | $(median "${ours_r[@]}") | $(median "${kafka_r[@]}") |"
echo
echo "W6 rf3 acks=all this/Kafka median $(median "${vs3[@]}") (per-pair ratios)"
echo "W6 rf1 acks=all this/Kafka median $(median "${vs1[@]}")"
echo "W6 rf3/rf1 this median $(median "${ours_r[@]}"), Kafka median $(median "${kafka_r[@]}")"
