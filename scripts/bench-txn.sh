#!/usr/bin/env bash
# Transactions benchmark: this broker against Apache Kafka 4.1.1 on the same machine, one node
# each, side by side.
#
# Usage: scripts/bench-txn.sh [--quick] [--pairs N] [--records N] [--no-build] [--reference-only]
#
#   --quick           100000 records per perf run, 2 pairs (full: 500000, 3 pairs)
#   --pairs N         interleaved pairs per figure (this broker, then Kafka; the next pair the
#                     other way round); the figures are the medians
#   --records N       records per kafka-producer-perf-test run
#   --no-build        use the broker binary as it is (no cargo build --release; see BROKER_BIN)
#   --reference-only  only Apache Kafka (checks the script itself)
#
# Per pair and broker, on a 3-partition topic (replication factor 1):
#   txn      kafka-producer-perf-test --transactional-id ID --transaction-duration-ms 100
#            --throughput -1 --record-size 100, acks=all (a commit every 100 ms)
#   idem     the same without transactions (the idempotent default): the transactions' cost
#   commit   compat-tests/java TxnLatency: 200 transactions of 10 records after 20 of warm-up;
#            the latency of commitTransaction() (EndTxn) and of a whole transaction
# Prints a Markdown table (records/s, the perf test's average / p50 / p99 send latency, commit
# p50 / p99) with the ratio this broker / Kafka; raw output in target/bench-txn/<run>/, the
# table also in target/bench-txn/<run>/summary.md. Processes are stopped by the pids this
# script started. No CPU pinning: on 2 cores the broker shares them with the load generator,
# for both brokers alike.
# Environment: KAFKA_HEAP_OPTS (the reference's heap, default -Xms1G -Xmx1G), CARGO (cargo),
# BROKER_BIN (the broker binary; default $CARGO_TARGET_DIR/release/broker when CARGO_TARGET_DIR
# is set, else target/release/broker).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
REF="$REPO/scripts/kafka-reference.sh"
RUN="$REPO/target/bench-txn/$(date +%Y%m%d-%H%M%S)-$$"
BROKER_BIN="${BROKER_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/broker}"
say() { echo "[bench-txn] $*" >&2; }
die() { say "error: $*"; exit 1; }

records=500000
pairs=3
build=1
ours=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) records=100000; pairs=2 ;;
        --pairs) [[ $# -ge 2 ]] || die "--pairs needs a value"; pairs="$2"; shift ;;
        --records) [[ $# -ge 2 ]] || die "--records needs a value"; records="$2"; shift ;;
        --no-build) build=0 ;;
        --reference-only) ours=0; build=0 ;;
        -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ "$pairs" =~ ^[1-9][0-9]*$ && "$records" =~ ^[1-9][0-9]*$ ]] || die "--pairs and --records take positive numbers"
mkdir -p "$RUN"

OURS_PID=""
REF_PORT=""
cleanup() {
    if [[ -n "$OURS_PID" ]]; then
        kill -TERM "$OURS_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$OURS_PID" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$OURS_PID" 2>/dev/null || true
    fi
    if [[ -n "$REF_PORT" ]]; then "$REF" stop "$REF_PORT" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port_pair() {
    python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    p = random.randrange(20000, 30000)
    if free(p) and free(p + 1):
        print(p)
        break
EOF
}

wait_port() {  # wait_port PORT SECONDS
    local deadline=$((SECONDS + $2))
    while (( SECONDS < deadline )); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- tools and brokers

if (( build )); then
    say "cargo build --release"
    (cd "$REPO" && "${CARGO:-cargo}" build --release --bin broker) >&2
fi
"$REF" fetch >/dev/null
"$REPO/compat-tests/java/scenario.sh" --build >&2 || die "compat-tests/java did not build"
JAR="$REPO/compat-tests/java/target/compat-java.jar"

declare -A BOOT
targets=()
if (( ours )); then
    [[ -x "$BROKER_BIN" ]] || die "$BROKER_BIN missing (build it, or drop --no-build)"
    mkdir -p "$RUN/ours"
    cp "$BROKER_BIN" "$RUN/ours/broker"
    port="$(free_port_pair)"
    cat > "$RUN/ours/config.json" <<EOF
{"data_dir": "$RUN/ours/data", "server": {"host": "127.0.0.1", "port": "$port"}}
EOF
    NO_COLOR=1 "$RUN/ours/broker" --config "$RUN/ours/config.json" > "$RUN/ours/broker.log" 2>&1 < /dev/null &
    OURS_PID=$!
    wait_port "$port" 30 || die "this broker did not listen on $port (log: $RUN/ours/broker.log)"
    BOOT[ours]="127.0.0.1:$port"
    targets+=(ours)
fi
REF_PORT="$(free_port_pair)"
KAFKA_REF_LOG="$RUN/kafka.log" "$REF" start "$REF_PORT" > /dev/null || die "Apache Kafka did not start (log: $RUN/kafka.log)"
BOOT[kafka]="127.0.0.1:$REF_PORT"
targets+=(kafka)
say "brokers: ${targets[*]} (${BOOT[*]}); $records records per perf run, $pairs pairs; raw output in $RUN"

for t in "${targets[@]}"; do
    "$REF" run-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "${BOOT[$t]}" --create \
        --topic bench-txn --partitions 3 --replication-factor 1 > "$RUN/$t-create.out" 2>&1 \
        || die "$t: kafka-topics --create failed: $(tail -n 2 "$RUN/$t-create.out")"
done

# ---------------------------------------------------------------- runs

perf() {  # perf TARGET PAIR KIND
    local out="$RUN/$1-$3-$2.out" extra=()
    [[ $3 == txn ]] && extra=(--transactional-id "bench-txn-$1-$2" --transaction-duration-ms 100)
    "$REF" run-tool org.apache.kafka.tools.ProducerPerformance --topic bench-txn --num-records "$records" \
        --record-size 100 --throughput -1 "${extra[@]}" \
        --producer-props "bootstrap.servers=${BOOT[$1]}" acks=all > "$out" 2>&1 \
        || say "$1 $3 pair $2: kafka-producer-perf-test failed: $(grep -m1 -E 'Exception|ERROR' "$out" || tail -n 1 "$out")"
}

latency() {  # latency TARGET PAIR
    local out="$RUN/$1-commit-$2.out"
    java -Xmx256m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$JAR" compat.TxnLatency \
        "${BOOT[$1]}" bench-txn 3 200 10 > "$out" 2>&1 \
        || say "$1 commit pair $2: TxnLatency failed: $(grep -m1 -E 'Exception|ERROR' "$out" || tail -n 1 "$out")"
}

for pair in $(seq 1 "$pairs"); do
    order=("${targets[@]}")
    if (( pair % 2 == 0 )) && [[ ${#targets[@]} -eq 2 ]]; then order=(kafka ours); fi
    for t in "${order[@]}"; do
        say "pair $pair/$pairs: $t"
        perf "$t" "$pair" txn
        perf "$t" "$pair" idem
        latency "$t" "$pair"
    done
done

# ---------------------------------------------------------------- summary

python3 - "$RUN" "$pairs" "$records" "${targets[@]}" <<'EOF' | tee "$RUN/summary.md"
import re, statistics, sys
run, pairs, records, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
PERF = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", re.M)
LAT = re.compile(r"commit_ms p50=([\d.]+) p99=([\d.]+) max=([\d.]+) avg=([\d.]+) txn_ms p50=([\d.]+) "
                 r"p99=([\d.]+) txns_per_s=([\d.]+)")

def values(t, kind):
    out = []
    for p in range(1, pairs + 1):
        try:
            text = open(f"{run}/{t}-{kind}-{p}.out").read()
        except OSError:
            continue
        m = (LAT if kind == "commit" else PERF).search(text)
        if m and (kind == "commit" or m.group(1) == records):
            out.append([float(x) for x in m.groups()])
    return out

rows = [("txn: records/s (perf test, 100 ms transactions)", "txn", 1, True),
        ("txn: avg send latency ms", "txn", 3, False),
        ("txn: p50 / p99 send latency ms", "txn", (5, 7), False),
        ("idempotent, no transactions: records/s", "idem", 1, True),
        ("idempotent: p50 / p99 send latency ms", "idem", (5, 7), False),
        ("commitTransaction p50 / p99 ms (10 records per txn)", "commit", (0, 1), False),
        ("whole transaction p50 / p99 ms", "commit", (4, 5), False),
        ("transactions/s, one producer, 10 records each", "commit", 6, True)]
names = {"ours": "this broker", "kafka": "Apache Kafka 4.1.1"}
print(f"Transactions benchmark ({records} records per perf run, medians of {pairs} pairs; ratio = this broker / Kafka)")
print()
print("| figure | " + " | ".join(names[t] for t in targets) + (" | ratio |" if len(targets) == 2 else " |"))
print("|---|" + "---|" * (len(targets) + (1 if len(targets) == 2 else 0)))
missing = []
for label, kind, col, higher_better in rows:
    cells, meds = [], []
    for t in targets:
        v = values(t, kind)
        if len(v) < pairs:
            missing.append(f"{t} {kind}: {len(v)} of {pairs} runs parsed")
        if not v:
            cells.append("n/a")
            meds.append(None)
            continue
        if isinstance(col, tuple):
            a, b = (statistics.median(x[c] for x in v) for c in col)
            cells.append(f"{a:g} / {b:g}")
            meds.append(a)
        else:
            m = statistics.median(x[col] for x in v)
            cells.append(f"{m:,.1f}")
            meds.append(m)
    line = f"| {label} | " + " | ".join(cells)
    if len(targets) == 2:
        line += " | " + (f"{meds[0] / meds[1]:.2f}" if None not in meds and meds[1] else "n/a")
    print(line + " |")
print()
if missing:
    print("Missing runs: " + "; ".join(missing) + f" (raw output in {run})")
    sys.exit(1)
EOF
