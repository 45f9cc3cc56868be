#!/usr/bin/env bash
# Application scenarios: Apache Kafka 4.1.1's own Kafka Connect, Kafka Streams (at_least_once and
# exactly_once_v2), transactional message copier and log compaction tester, unchanged, against a
# running broker.
#
# Usage: compat-tests/apps/run.sh BOOTSTRAP [STATE_DIR]
#        compat-tests/apps/run.sh --build        (build only)
#        APPS_STEPS=compaction_tester compat-tests/apps/run.sh BOOTSTRAP   (a subset of the steps)
#
# connect  A distributed worker (org.apache.kafka.connect.cli.ConnectDistributed, connect-runtime
#          + connect-file on the classpath) with its own group.id and config/offset/status topics
#          (Connect creates them compacted and checks their cleanup.policy), REST on a free port.
#          Over REST: a FileStreamSource connector (file -> topic; Connect creates the topic, one
#          partition) and a FileStreamSink connector (topic -> file). CONNECT_LINES lines are
#          written to the source file and must reach the sink file exactly, in order; connector
#          and task status must be RUNNING. The worker is stopped (SIGTERM), more lines are
#          appended while it is down, it is started again (connector configs from the config
#          topic), more lines are appended: the sink file must hold every line exactly once, in
#          order (the source offsets survived in the offsets topic, the sink's consumer group
#          offsets in the broker).
# streams  A word count (src/main/java/compat/apps/WordCountApp.java: StreamsBuilder, flatMapValues,
#          groupBy -> repartition topic, count() -> RocksDB store with a compacted changelog topic
#          (segment.ms 500, min.cleanable.dirty.ratio 0.01, min.compaction.lag.ms 0,
#          compression.type lz4), at_least_once, 2 stream threads, commit.interval.ms 200,
#          repartition topic purged with DeleteRecords every second), run as its own JVM over a
#          3-partition input topic filled with known text (150 lines per batch).
#          Round 1 (two batches, so the changelog rolls a segment): the latest count per word in
#          the output topic must equal the expected counts; the internal topics' configs are
#          checked and the repartition topic must have been purged. The app is stopped (SIGTERM,
#          clean close). While it is down the broker's log cleaner should compact the changelog:
#          streams_changelog_compacted waits up to APPS_COMPACT_WAIT seconds until a partition has
#          fewer records than offsets (SKIP if not), and the latest value per key in the changelog
#          must be the expected count. More text; round 2 starts with the same application.id and
#          a fresh state.dir (the store is restored from the changelog): the counts must cover
#          both rounds exactly. Round 3: stop, more text, start over round 2's state.dir (local
#          RocksDB + checkpoint, only the changelog's tail restored): counts of all rounds.
# streams_eos
#          The same word count with processing.guarantee=exactly_once_v2 (one transactional
#          producer per stream thread, input offsets committed inside its transactions), its own
#          topics and application.id. streams_eos_count: 150 lines, the latest count per word
#          read_committed must equal the expected counts, and a count above the expected one (a
#          word counted twice, or an aborted transaction read) fails at once;
#          streams_eos_transactions: ListTransactions lists the app's transactional ids
#          (APPLICATION_ID-<process id>-<thread>); streams_eos_kill: 6000 more lines (APPS_EOS_LINES),
#          the app is killed -9 as soon as the output topic grows (mid-batch: transactions open);
#          streams_eos_after_kill: 150 more lines while it is down, the app starts again over the
#          same state.dir (same process id: its producers fence the dead ones' transactions; the
#          dirty stores are restored from the changelog), the read_committed counts must cover
#          every line exactly once; streams_eos_stop: SIGTERM, clean close.
# copier   Kafka's TransactionalMessageCopier (kafka-tools 4.1.1, through scripts/kafka-reference.sh
#          run-tool), --enable-random-aborts, 100 records per transaction, copying a 2-partition
#          input (APPS_COPIER_RECORDS per partition, default 3000, unique keys and values) to a
#          2-partition output, one copier per partition: partition 0 sends its offsets with the
#          group id, partition 1 with the consumer's group metadata (--use-group-metadata) and is
#          killed -9 a third of the way, then started again with the same transactional id and
#          group (transaction timeout 10 s: the restarted copier waits for the dead one's
#          transaction to time out, see copier()). copier_exactly_once: read_committed, each output partition holds exactly its input
#          partition's records, in order (nothing lost, nothing twice); the aborted records
#          (read_uncommitted only) must not be zero.
# compaction_tester
#          Kafka's own log compaction torture test, kafka.tools.LogCompactionTester from
#          kafka_2.13-4.1.1-test.jar (classpath: compaction-tester/pom.xml). It creates its topics
#          itself (log-cleaner-test-<random>-<n>, one partition, replication factor 1 whatever
#          COMPAT_REPLICATION_FACTOR says, only cleanup.policy=compact), produces keyed updates
#          and deletes (tombstones) with random keys, sleeps, consumes every topic from the start
#          until a poll stays empty for 20 s, and checks that the latest value per key consumed
#          equals the latest value per key produced (a key whose latest record is a tombstone must
#          have no value). Defaults (APPS_TESTER_ARGS): 200000 messages per topic, 2 topics, 10
#          duplicates per key, 10% deletes, 5 s sleep; about 35 s. compaction_tester_reduced: the
#          consumed rows must be fewer than the produced ones (the tester prints the reduction).
#          Its topics take the broker's default segment size and roll time, and a log's active
#          segment is never cleaned: with 1 GiB segments nothing is compacted (and with Kafka's
#          default 15 s log.cleaner.backoff.ms the consumer may read everything before the cleaner
#          comes round: 0.0% in a run with 1 MiB segments); a SKIP, a FAIL with
#          APPS_REQUIRE_TESTER_REDUCTION=1. Start the broker with small segments and a short
#          cleaner backoff: this broker "segment_size": 1048576, "cleaner": {"backoff": "1s"}
#          (scripts/test-apps.sh does); Apache Kafka
#          KAFKA_REF_EXTRA_PROPS=$'log.segment.bytes=1048576\nlog.cleaner.backoff.ms=1000' \
#              scripts/kafka-reference.sh start PORT
#          Its producer has acks=all: with min.insync.replicas 2 (scripts/start-cluster.sh's
#          cluster) Kafka 4.1 accepts the records (its minimum ISR is min(min.insync.replicas,
#          replicas)); a broker that answers NOT_ENOUGH_REPLICAS fails the step (stopped after 5
#          such answers; the tester itself would only fail when the records expire, 2 min later).
#
# Every name (group, topics, application.id) carries a per-run suffix, so runs against the same
# broker do not meet. Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines (`# ...`
# lines are comments); exits 1 if any check failed. On a FAIL the message names the log file.
# STATE_DIR (default: a new temporary directory) gets worker/app logs (connect/worker-*.log,
# streams/app-*.log), the files, configs and state dirs.
#
# Built with Maven into target/compat-apps.jar + target/lib/ (every dependency) and
# target/tester-lib/ (the compaction tester's classpath) when missing or older than the sources,
# offline (mvn -o) when the local repository already has everything.
#
# Environment: COMPAT_REPLICATION_FACTOR (replication factor of every topic the apps create,
# default 1), JAVA (default java), MVN (default mvn), APPS_LOG_LEVEL (worker/app log level,
# default info), CONNECT_LINES (lines per connect round, default 200), APPS_WAIT (seconds each
# wait for data may take, default 60), APPS_COMPACT_WAIT (seconds to wait for the changelog's
# compaction, default 40), APPS_REQUIRE_COMPACTION (1: an uncompacted changelog is a FAIL, not a
# SKIP; scripts/test-apps.sh sets it for this broker, whose cleaner backoff it shortens),
# APPS_STEPS (the steps to run, space or comma separated, of connect streams streams_eos copier
# compaction_tester;
# they run in that order; default all), APPS_TESTER_ARGS (LogCompactionTester options besides
# --bootstrap-server, default "--messages 200000 --duplicates 10 --topics 2 --percent-deletes 10
# --sleep 5"; --sleep is in seconds), APPS_TESTER_TIMEOUT (seconds, default 180),
# APPS_REQUIRE_TESTER_REDUCTION (1: no reduction is a FAIL of compaction_tester_reduced, not a
# SKIP; scripts/test-apps.sh sets it for the single node, whose segment size it sets to 1 MiB),
# APPS_EOS_LINES (lines of streams_eos' large batch, default 6000), APPS_COPIER_RECORDS (records
# per input partition of the copier step, default 3000).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
JAR="$HERE/target/compat-apps.jar"
LIB="$HERE/target/lib"

TESTER_POM="$HERE/compaction-tester/pom.xml"
TESTER_LIB="$HERE/target/tester-lib"
ALL_STEPS="connect streams streams_eos copier compaction_tester"
KAFKA_REF="$(cd "$HERE/../.." && pwd)/scripts/kafka-reference.sh"
COPIER=org.apache.kafka.tools.TransactionalMessageCopier

needs_build() {
    [[ -f "$JAR" && -d "$LIB" ]] || return 0
    [[ -n "$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -type f 2>/dev/null | head -n 1)" ]]
}

# mvn_twice LOG ARGS...: offline first (after the first build the local repository has every
# plugin and jar), then resolving from Maven Central
mvn_twice() {
    local log="$1"
    shift
    command -v "$MVN" >/dev/null || { echo "mvn not found (apt-get install -y maven)" >&2; return 1; }
    mkdir -p "$HERE/target"
    if ! timeout 300 "$MVN" -B -q -o -Dstyle.color=never "$@" > "$log" 2>&1; then
        echo "compat-tests/apps: offline build failed, resolving from Maven Central" >&2
        if ! timeout 600 "$MVN" -B -q -Dstyle.color=never "$@" >> "$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
    fi
}

build() {
    needs_build || return 0
    mvn_twice "$HERE/target/build.log" -f "$HERE/pom.xml" package || return 1
    touch "$JAR"
}

# the compaction tester's classpath: every jar of compaction-tester/pom.xml in target/tester-lib/
build_tester() {
    [[ -f "$TESTER_LIB/.complete" && ! "$TESTER_POM" -nt "$TESTER_LIB/.complete" ]] && return 0
    local tmp="$HERE/target/tester-lib.tmp"
    rm -rf "$tmp"
    mvn_twice "$HERE/target/tester-build.log" -f "$TESTER_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" || return 1
    [[ -n "$(find "$tmp" -name 'kafka_2.13-*-test.jar' 2>/dev/null)" ]] || {
        echo "compat-tests/apps: no kafka_2.13 test jar in $tmp" >&2
        return 1
    }
    rm -rf "$TESTER_LIB"
    mv "$tmp" "$TESTER_LIB"
    touch "$TESTER_LIB/.complete"
}

if [[ "${1:-}" == "--build" ]]; then
    build && build_tester
    exit $?
fi
[[ $# -ge 1 && "$1" != -* ]] || { sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

STEPS=""
APPS_STEPS="${APPS_STEPS:-$ALL_STEPS}"
for s in ${APPS_STEPS//,/ }; do  # word splitting on purpose
    [[ " $ALL_STEPS " == *" $s "* ]] || { echo "APPS_STEPS: unknown step '$s' (steps: $ALL_STEPS)" >&2; exit 2; }
done
for s in $ALL_STEPS; do
    [[ " ${APPS_STEPS//,/ } " == *" $s "* ]] && STEPS+="${STEPS:+ }$s"
done
[[ -n "$STEPS" ]] || { echo "APPS_STEPS names no step (steps: $ALL_STEPS)" >&2; exit 2; }
wants() { [[ " $STEPS " == *" $1 "* ]]; }

BOOTSTRAP="$1"
STATE_DIR="${2:-$(mktemp -d "${TMPDIR:-/tmp}/compat-apps.XXXXXX")}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
export COMPAT_REPLICATION_FACTOR="${COMPAT_REPLICATION_FACTOR:-1}"
RF="$COMPAT_REPLICATION_FACTOR"
CONNECT_LINES="${CONNECT_LINES:-200}"
WAIT="${APPS_WAIT:-60}"
COMPACT_WAIT="${APPS_COMPACT_WAIT:-40}"
RUN_ID="$(date +%s)$$"

if { wants connect || wants streams || wants streams_eos || wants copier; } && ! build; then
    echo "FAIL apps_build: mvn package failed (see $HERE/target/build.log)"
    exit 1
fi
if wants copier && ! "$KAFKA_REF" fetch > /dev/null 2>&1; then
    echo "FAIL apps_build: scripts/kafka-reference.sh fetch could not get the Kafka jars (TransactionalMessageCopier is in kafka-tools)"
    exit 1
fi
if wants compaction_tester && ! build_tester; then
    echo "FAIL apps_build: the compaction tester's classpath (compaction-tester/pom.xml) did not resolve (see $HERE/target/tester-build.log)"
    exit 1
fi

FAILS=0
pass() { echo "PASS $1${2:+ # $2}"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP $1: $2"; }

# ---------------------------------------------------------------- processes

JVM_OPTS=(-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    -Dlog4j2.configurationFile="$HERE/log4j2.properties")
CP="$JAR:$LIB/*"
TOOL_LOG="$STATE_DIR/tool.log"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 40); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || return 0
        sleep 0.25
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tool ARGS...: AppsTool; its last stdout line (the result or the reason) goes to stdout,
# everything it prints and logs to $TOOL_LOG
tool_java() {
    echo "===== $(date +%T) AppsTool $*" >> "$TOOL_LOG"
    exec "$JAVA" "${JVM_OPTS[@]}" -Dapps.log.target=SYSTEM_ERR -Dapps.log.level=warn \
        -cp "$CP" compat.apps.AppsTool "$@" 2>> "$TOOL_LOG"
}
tool() {
    local out rc
    out="$(tool_java "$@")"
    rc=$?
    echo "$out" >> "$TOOL_LOG"
    echo "$out" | tail -n 1
    return $rc
}

# tool_watching PID ARGS...: tool ARGS, stopped early (and failed) when PID, the app it waits
# for, is no longer running
tool_watching() {
    local watched="$1" out tpid rc
    shift
    out="$(mktemp "$STATE_DIR/.tool.XXXXXX")"
    tool_java "$@" > "$out" &
    tpid=$!
    while kill -0 "$tpid" 2>/dev/null; do
        if ! kill -0 "$watched" 2>/dev/null; then
            sleep 1  # it may have been the last thing the app did; let the tool see it
            if kill -0 "$tpid" 2>/dev/null; then
                kill "$tpid" 2>/dev/null
                wait "$tpid" 2>/dev/null
                echo "the app exited while AppsTool $1 was waiting for it"
                cat "$out" >> "$TOOL_LOG"
                rm -f "$out"
                return 1
            fi
        fi
        sleep 0.3
    done
    wait "$tpid"
    rc=$?
    cat "$out" >> "$TOOL_LOG"
    tail -n 1 "$out"
    rm -f "$out"
    return $rc
}

# first_error LOG: "; first ERROR: ..." from LOG's last run (the line after it too: the exception), or nothing
first_error() {
    local e
    e="$(awk '/^===== / { e = ""; n = 0 } e == "" && / ERROR / { e = $0; n = 1; next }
        n == 1 { e = e " | " $0; n = 0 } END { print e }' "$1" | cut -c 1-400)"
    [[ -z "$e" ]] || echo "; first ERROR: $e"
}

# spawn LOG MAIN ARGS...: a JVM in the background, output to LOG (truncated first); sets SPAWNED to its pid
spawn() {
    local log="$1"
    shift
    echo "===== $(date -Is) $*" > "$log"
    "$JAVA" "${JVM_OPTS[@]}" -Dapps.log.level="${APPS_LOG_LEVEL:-info}" -cp "$CP" "$@" >> "$log" 2>&1 < /dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# stop_pid PID SECONDS: SIGTERM, wait; fails when SIGKILL was needed after SECONDS or the exit
# code is neither 0 nor 143 (a JVM that ran its shutdown hooks after SIGTERM exits with 143)
stop_pid() {
    local pid="$1" deadline=$((SECONDS + $2)) rc
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null
            STOP_RC=killed
            return 1
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null
    rc=$?
    STOP_RC=$rc
    [[ $rc == 0 || $rc == 143 ]]
}

stop_desc() {  # stop_desc SECONDS: why stop_pid failed
    if [[ "$STOP_RC" == killed ]]; then echo "still running after $1s, SIGKILL"; else echo "exit code $STOP_RC"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((30000 + RANDOM % 10000))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# ---------------------------------------------------------------- connect

CONNECT_DIR="$STATE_DIR/connect"
REST=""
WORKER_PID=""
WORKER_LOG=""

rest() {  # rest METHOD PATH [JSON]: prints the body, then the HTTP status on the last line
    local method="$1" path="$2"
    shift 2
    curl -s -m 10 -X "$method" -H 'Content-Type: application/json' ${1:+--data "$1"} \
        -w '\n%{http_code}' "$REST$path"
}

# start_worker N: start the worker with log worker-N.log; wait until its REST API lists connectors.
# Functions that start or stop processes run in this shell (not in $(...)): they leave their
# message in MSG.
MSG=""
start_worker() {
    WORKER_LOG="$CONNECT_DIR/worker-$1.log"
    spawn "$WORKER_LOG" org.apache.kafka.connect.cli.ConnectDistributed "$CONNECT_DIR/worker.properties"
    WORKER_PID=$SPAWNED
    MSG="$(wait_worker)"
}
wait_worker() {
    local deadline=$((SECONDS + 90)) t0=$SECONDS out
    while (( SECONDS < deadline )); do
        if ! kill -0 "$WORKER_PID" 2>/dev/null; then
            echo "the worker exited during startup$(first_error "$WORKER_LOG") (log: $WORKER_LOG)"
            return 1
        fi
        if grep -qE 'Failed to start Connect|Uncaught exception in herder work thread' "$WORKER_LOG"; then
            echo "the worker failed to start$(first_error "$WORKER_LOG") (log: $WORKER_LOG)"
            return 1
        fi
        # /connectors answers once the worker has joined the group and read the config topic
        out="$(rest GET /connectors 2>/dev/null)" && [[ "$(tail -n 1 <<< "$out")" == 200 ]] && {
            echo "REST on $REST after $((SECONDS - t0))s"
            return 0
        }
        sleep 0.5
    done
    echo "REST $REST/connectors did not answer 200 within 90s (log: $WORKER_LOG)"
    return 1
}

# connector_states NAME: the connector's and its tasks' states, e.g. "RUNNING RUNNING"
connector_states() {
    rest GET "/connectors/$1/status" 2>/dev/null | head -n -1 \
        | grep -o '"state":"[A-Z_]*"' | sed 's/"state":"\(.*\)"/\1/' | tr '\n' ' ' | sed 's/ $//'
}

# wait_running SECONDS NAME...: every connector and its (one) task RUNNING
wait_running() {
    local deadline=$((SECONDS + $1)) name states all
    shift
    while true; do
        if ! kill -0 "$WORKER_PID" 2>/dev/null; then
            echo "the worker exited$(first_error "$WORKER_LOG") (log: $WORKER_LOG)"
            return 1
        fi
        all=1
        local desc=""
        for name in "$@"; do
            states="$(connector_states "$name")"
            desc+="${desc:+, }$name: ${states:-no status}"
            [[ "$states" == "RUNNING RUNNING" ]] || all=0
        done
        if (( all )); then echo "$desc"; return 0; fi
        if (( SECONDS >= deadline )); then echo "not RUNNING after $1s: $desc (log: $WORKER_LOG)"; return 1; fi
        sleep 0.5
    done
}

# wait_sink SECONDS: the sink file equals the source file; fails at once when the sink is not a
# prefix of the source (a line twice, out of order or foreign)
wait_sink() {
    local deadline=$((SECONDS + $1)) src="$CONNECT_DIR/source.txt" sink="$CONNECT_DIR/sink.txt"
    local snap="$CONNECT_DIR/sink.snapshot"
    while true; do
        if ! kill -0 "$WORKER_PID" 2>/dev/null; then
            echo "the worker exited$(first_error "$WORKER_LOG") (log: $WORKER_LOG)"
            return 1
        fi
        if [[ -f "$sink" ]]; then
            # a copy: the sink task may be writing while we compare
            cp "$sink" "$snap"
            if cmp -s "$src" "$snap"; then
                echo "$(wc -l < "$snap") lines in order, exactly once"
                return 0
            fi
            if ! cmp -s <(head -c "$(stat -c %s "$snap")" "$src") "$snap"; then
                echo "the sink file is not a prefix of the source: $(cmp "$src" "$snap" 2>&1 | head -n 1);" \
                    "$(wc -l < "$snap") sink lines for $(wc -l < "$src"), $(sort "$snap" | uniq -d | wc -l)" \
                    "lines duplicated (log: $WORKER_LOG)"
                return 1
            fi
        fi
        if (( SECONDS >= deadline )); then
            echo "after $1s the sink file has $( [[ -f "$sink" ]] && wc -l < "$sink" || echo no) lines of" \
                "$(wc -l < "$src") (log: $WORKER_LOG)"
            return 1
        fi
        sleep 0.3
    done
}

append_lines() {  # append_lines FROM TO: lines FROM..TO in one write
    local i out=""
    for ((i = $1; i <= $2; i++)); do out+="$(printf 'line %05d of run %s: the quick brown fox' "$i" "$RUN_ID")"$'\n'; done
    printf '%s' "$out" >> "$CONNECT_DIR/source.txt"
}

connect_step() {
    mkdir -p "$CONNECT_DIR"
    local port group data msg src=file-source-$RUN_ID sink=file-sink-$RUN_ID
    if ! port="$(free_port)"; then fail connect_worker_start "no free port for REST"; return; fi
    REST="http://127.0.0.1:$port"
    group="apps-connect-$RUN_ID"
    data="apps-connect-data-$RUN_ID"
    cat > "$CONNECT_DIR/worker.properties" <<EOF
bootstrap.servers=$BOOTSTRAP
group.id=$group
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
config.storage.topic=$group-configs
config.storage.replication.factor=$RF
offset.storage.topic=$group-offsets
offset.storage.replication.factor=$RF
offset.storage.partitions=5
status.storage.topic=$group-status
status.storage.replication.factor=$RF
status.storage.partitions=3
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$port
EOF
    : > "$CONNECT_DIR/source.txt"
    rm -f "$CONNECT_DIR/sink.txt"

    if start_worker 1; then pass connect_worker_start "$MSG"; else
        fail connect_worker_start "$MSG"
        skip connect "the worker did not start"
        return
    fi
    if msg="$(tool check-config "$BOOTSTRAP" cleanup.policy=compact "$group-configs" "$group-offsets" "$group-status")"; then
        pass connect_internal_topics "$msg"
    else
        fail connect_internal_topics "$msg (log: $TOOL_LOG)"
    fi

    local src_cfg sink_cfg out code
    src_cfg="{\"connector.class\":\"org.apache.kafka.connect.file.FileStreamSourceConnector\",\"tasks.max\":\"1\",\"file\":\"$CONNECT_DIR/source.txt\",\"topic\":\"$data\",\"topic.creation.default.replication.factor\":\"$RF\",\"topic.creation.default.partitions\":\"1\"}"
    sink_cfg="{\"connector.class\":\"org.apache.kafka.connect.file.FileStreamSinkConnector\",\"tasks.max\":\"1\",\"file\":\"$CONNECT_DIR/sink.txt\",\"topics\":\"$data\"}"
    msg=""
    for pair in "$src:$src_cfg" "$sink:$sink_cfg"; do
        out="$(rest PUT "/connectors/${pair%%:*}/config" "${pair#*:}")"
        code="$(tail -n 1 <<< "$out")"
        [[ "$code" == 201 ]] || msg+="${msg:+; }PUT /connectors/${pair%%:*}/config: HTTP $code $(head -n -1 <<< "$out" | head -c 300)"
    done
    if [[ -n "$msg" ]]; then
        fail connect_create_connectors "$msg (log: $WORKER_LOG)"
        skip connect "no connectors"
        return
    fi
    pass connect_create_connectors "$src, $sink"

    append_lines 1 "$CONNECT_LINES"
    if msg="$(wait_sink "$WAIT")"; then pass connect_file_to_file "$msg"; else fail connect_file_to_file "$msg"; fi
    if msg="$(wait_running 30 "$src" "$sink")"; then pass connect_status_running "$msg"; else fail connect_status_running "$msg"; fi

    local t0=$SECONDS
    if stop_pid "$WORKER_PID" 60; then pass connect_worker_stop "SIGTERM, exited in $((SECONDS - t0))s"; else
        fail connect_worker_stop "after SIGTERM: $(stop_desc 60) (log: $WORKER_LOG)"
    fi
    local half=$((CONNECT_LINES + CONNECT_LINES / 4)) total=$((CONNECT_LINES + CONNECT_LINES / 2))
    append_lines $((CONNECT_LINES + 1)) "$half"   # while the worker is down

    if start_worker 2; then pass connect_worker_restart "$MSG"; else
        fail connect_worker_restart "$MSG"
        skip connect_after_restart "the worker did not start again"
        return
    fi
    if msg="$(wait_running 60 "$src" "$sink")"; then pass connect_restart_status_running "$msg"; else
        fail connect_restart_status_running "$msg"
    fi
    append_lines $((half + 1)) "$total"
    if msg="$(wait_sink "$WAIT")"; then pass connect_restart_exactly_once "$msg"; else
        fail connect_restart_exactly_once "$msg"
    fi
    stop_pid "$WORKER_PID" 60 || echo "# the worker did not stop cleanly at the end (log: $WORKER_LOG)"
}

# ---------------------------------------------------------------- streams

STREAMS_DIR="$STATE_DIR/streams"
APP_PID=""
APP_LOG=""

# start_app N STATE: round N's app (log app-N.log) over state.dir STATE
start_app() {
    APP_LOG="$STREAMS_DIR/app-$1.log"
    spawn "$APP_LOG" compat.apps.WordCountApp "$BOOTSTRAP" "$APP_ID" "$INPUT" "$OUTPUT" "$2"
    APP_PID=$SPAWNED
}

# stop_app: SIGTERM; the app must close cleanly (it prints "STOPPED clean")
stop_app() {
    local t0=$SECONDS
    if ! kill -0 "$APP_PID" 2>/dev/null; then
        wait "$APP_PID" 2>/dev/null
        MSG="the app had already exited (exit code $?) (log: $APP_LOG)"
        return 1
    fi
    if ! stop_pid "$APP_PID" 60; then
        MSG="after SIGTERM: $(stop_desc 60) (log: $APP_LOG)"
        return 1
    fi
    if [[ "$(awk '/^===== / { s = "" } /^STOPPED / { s = $0 } END { print s }' "$APP_LOG")" != "STOPPED clean" ]]; then
        MSG="the app exited without a clean close (log: $APP_LOG)"
        return 1
    fi
    MSG="closed cleanly in $((SECONDS - t0))s"
}

# restored: the records restored from the changelog in the current round, e.g. "2 partitions, 57 records"
restored() {  # the current round's restores from the changelog (the log's last run)
    awk '/^===== / { n = 0; t = 0 } /^RESTORED / { n++; t += $NF }
        END { printf "%d store partitions restored, %d records", n, t }' "$APP_LOG"
}

# produce_text NAME SEED: NAME.txt (150 lines of text from SEED) into the input topic, added to
# TEXTS; MSG says what happened
produce_text() {
    MSG=""
    tool gen-text "$STREAMS_DIR/$1.txt" "$2" 150 > /dev/null &&
        MSG="$(tool produce "$BOOTSTRAP" "$INPUT" "$STREAMS_DIR/$1.txt")" || {
        MSG="${MSG:-gen-text failed} (log: $TOOL_LOG)"
        return 1
    }
    TEXTS+=("$STREAMS_DIR/$1.txt")
}

# counts: the latest count per word in the output topic must become the counts of TEXTS
counts() {
    tool_watching "$APP_PID" verify-counts "$BOOTSTRAP" "$OUTPUT" "$WAIT" "${TEXTS[@]}"
}

streams_step() {
    mkdir -p "$STREAMS_DIR"
    APP_ID="apps-wordcount-$RUN_ID"
    INPUT="$APP_ID-input"
    OUTPUT="$APP_ID-output"
    TEXTS=()
    local msg msg2 rc changelog="$APP_ID-word-counts-changelog" repartition="$APP_ID-words-repartition"
    if msg="$(tool create-topics "$BOOTSTRAP" 3 "$INPUT" "$OUTPUT")"; then pass streams_topics "$INPUT, $OUTPUT: $msg"; else
        fail streams_topics "$msg (log: $TOOL_LOG)"
        skip streams "no topics"
        return
    fi

    # round 1, in two halves: the changelog gets more than one segment (segment.ms 500)
    produce_text text-1a 1 || { fail streams_produce "$MSG"; skip streams "no input"; return; }
    start_app 1 "$STREAMS_DIR/state-1"
    if msg="$(counts)"; then
        msg2=""
        if produce_text text-1b 11 && msg2="$(counts)"; then
            pass streams_count_round1 "first half: $msg; both: $msg2"
        else
            fail streams_count_round1 "second half: ${msg2:-$MSG}$(first_error "$APP_LOG") (log: $APP_LOG)"
        fi
    else
        fail streams_count_round1 "first half: $msg$(first_error "$APP_LOG") (log: $APP_LOG)"
    fi
    if msg="$(tool check-config "$BOOTSTRAP" cleanup.policy=compact,compression.type=lz4,segment.ms=500,min.cleanable.dirty.ratio=0.01 "$changelog")"; then
        if msg2="$(tool check-config "$BOOTSTRAP" cleanup.policy=delete "$repartition")"; then
            pass streams_internal_topics "$msg $msg2"
        else
            fail streams_internal_topics "$msg2 (log: $TOOL_LOG, $APP_LOG)"
        fi
    else
        fail streams_internal_topics "$msg (log: $TOOL_LOG, $APP_LOG)"
    fi
    if msg="$(tool_watching "$APP_PID" wait-purged "$BOOTSTRAP" "$repartition" 20)"; then pass streams_repartition_purged "$msg"; else
        fail streams_repartition_purged "$msg (log: $APP_LOG)"
    fi
    if stop_app; then pass streams_stop_round1 "$MSG"; else fail streams_stop_round1 "$MSG"; fi

    # the broker's log cleaner, while the app is down: the changelog keeps the latest count per word
    if msg="$(tool wait-compacted "$BOOTSTRAP" "$changelog" "$COMPACT_WAIT" "${TEXTS[@]}")"; then
        pass streams_changelog_compacted "$msg"
    else
        rc=$?
        if [[ $rc == 3 && "${APPS_REQUIRE_COMPACTION:-0}" != 1 ]]; then skip streams_changelog_compacted "$msg"; else fail streams_changelog_compacted "$msg (log: $TOOL_LOG)"; fi
    fi

    # round 2: a fresh state.dir, the store comes back from the changelog
    produce_text text-2 2 || { fail streams_produce "$MSG"; return; }
    start_app 2 "$STREAMS_DIR/state-2"
    if msg="$(counts)"; then
        local r
        r="$(restored)"
        if [[ "$r" == *" 0 records" ]]; then
            fail streams_restore_from_changelog "the counts are right but nothing was restored from the changelog: $r (log: $APP_LOG)"
        else
            pass streams_restore_from_changelog "fresh state.dir, $r; $msg"
        fi
    else
        fail streams_restore_from_changelog "$msg$(first_error "$APP_LOG"); $(restored) (log: $APP_LOG)"
    fi
    if stop_app; then pass streams_stop_round2 "$MSG"; else fail streams_stop_round2 "$MSG"; fi

    # round 3: round 2's state.dir (local RocksDB and checkpoint)
    produce_text text-3 3 || { fail streams_produce "$MSG"; return; }
    start_app 3 "$STREAMS_DIR/state-2"
    if msg="$(counts)"; then
        pass streams_restart_local_state "same state.dir, $(restored); $msg"
    else
        fail streams_restart_local_state "$msg$(first_error "$APP_LOG"); $(restored) (log: $APP_LOG)"
    fi
    if stop_app; then pass streams_stop_round3 "$MSG"; else fail streams_stop_round3 "$MSG"; fi
}

# ---------------------------------------------------------------- streams, exactly_once_v2

EOS_DIR="$STATE_DIR/streams-eos"

# start_eos N: round N of the exactly_once_v2 word count (log eos-N.log), state.dir EOS_DIR/state
start_eos() {
    APP_LOG="$EOS_DIR/eos-$1.log"
    spawn "$APP_LOG" compat.apps.WordCountApp "$BOOTSTRAP" "$APP_ID" "$INPUT" "$OUTPUT" "$EOS_DIR/state" exactly_once_v2
    APP_PID=$SPAWNED
}

# eos_counts: read_committed, the latest count per word must become the counts of TEXTS; a count
# above the expected one (a record counted twice, an aborted transaction's output read) fails at once
eos_counts() {
    tool_watching "$APP_PID" verify-counts-committed "$BOOTSTRAP" "$OUTPUT" "$WAIT" "${TEXTS[@]}"
}

streams_eos_step() {
    mkdir -p "$EOS_DIR"
    APP_ID="apps-wordcount-eos-$RUN_ID"
    INPUT="$APP_ID-input"
    OUTPUT="$APP_ID-output"
    TEXTS=()
    local STREAMS_DIR="$EOS_DIR"   # produce_text writes its texts here
    local msg
    if msg="$(tool create-topics "$BOOTSTRAP" 3 "$INPUT" "$OUTPUT")"; then pass streams_eos_topics "$INPUT, $OUTPUT: $msg"; else
        fail streams_eos_topics "$msg (log: $TOOL_LOG)"
        skip streams_eos "no topics"
        return
    fi
    produce_text eos-1 21 || { fail streams_eos_produce "$MSG"; skip streams_eos "no input"; return; }
    start_eos 1
    if msg="$(eos_counts)"; then pass streams_eos_count "$msg"; else
        fail streams_eos_count "$msg$(first_error "$APP_LOG") (log: $APP_LOG)"
    fi
    # one transactional producer per stream thread: transactional.id APP_ID-<process id>-<thread>
    if msg="$(tool list-txns "$BOOTSTRAP" "$APP_ID-")"; then pass streams_eos_transactions "$msg"; else
        fail streams_eos_transactions "$msg (log: $TOOL_LOG)"
    fi

    # kill -9 while it works through a large batch: its open transactions must never be read,
    # the restarted app (same state.dir: same process id, so its producers fence the dead ones)
    # must count every line exactly once
    local lines_big="${APPS_EOS_LINES:-6000}"
    if ! tool gen-text "$EOS_DIR/eos-2.txt" 22 "$lines_big" > /dev/null; then
        fail streams_eos_produce "gen-text failed (log: $TOOL_LOG)"
        return
    fi
    TEXTS+=("$EOS_DIR/eos-2.txt")
    if ! kill -0 "$APP_PID" 2>/dev/null; then
        fail streams_eos_kill "the app had exited before the kill (log: $APP_LOG)"
        return
    fi
    if msg="$(tool_watching "$APP_PID" produce-watch "$BOOTSTRAP" "$INPUT" "$EOS_DIR/eos-2.txt" "$OUTPUT" 30)"; then
        kill -KILL "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
        pass streams_eos_kill "kill -9 as soon as the output grew: $msg"
    else
        kill -KILL "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
        fail streams_eos_kill "$msg$(first_error "$APP_LOG") (log: $APP_LOG)"
        return
    fi
    produce_text eos-3 23 || { fail streams_eos_produce "$MSG"; return; }
    start_eos 2
    if msg="$(eos_counts)"; then pass streams_eos_after_kill "$msg; $(restored)"; else
        fail streams_eos_after_kill "$msg$(first_error "$APP_LOG"); $(restored) (log: $APP_LOG)"
    fi
    if stop_app; then pass streams_eos_stop "$MSG"; else fail streams_eos_stop "$MSG"; fi
}

# ---------------------------------------------------------------- transactional message copier

COPIER_DIR="$STATE_DIR/copier"

# copier LOG PARTITION GROUP [OPTIONS...]: Kafka's TransactionalMessageCopier (kafka-tools) in the
# background, one input partition to the same partition of the output topic, random aborts;
# sets SPAWNED (kafka-reference.sh run-tool execs java: the JVM's pid). Transaction timeout 10 s:
# the copier asks its consumer's position (OffsetFetch, require_stable) before initTransactions,
# so after a kill -9 inside a transaction that had sent offsets it waits with
# UNSTABLE_OFFSET_COMMIT until the coordinator aborts the dead transaction on its timeout (the
# default 60 s would meet the consumer's 60 s default.api.timeout.ms)
copier() {
    local log="$1" part="$2" group="$3"
    shift 3
    echo "===== $(date -Is) $COPIER partition $part $*" > "$log"
    "$KAFKA_REF" run-tool "$COPIER" --broker-list "$BOOTSTRAP" --input-topic "$CIN" --input-partition "$part" \
        --output-topic "$COUT" --consumer-group "$group" --transactional-id "$group" --transaction-size 100 \
        --transaction-timeout 10000 --enable-random-aborts "$@" >> "$log" 2>&1 < /dev/null &
    SPAWNED=$!
    PIDS+=("$SPAWNED")
}

# processed LOG: the copier's last totalProcessed
processed() { grep -o '"totalProcessed":[0-9]*' "$1" | tail -n 1 | cut -d: -f2; }

# wait_copier PID LOG SECONDS: exit 0 after "ShutdownComplete"; MSG says how it ended
wait_copier() {
    local deadline=$((SECONDS + $3)) rc
    while kill -0 "$1" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            kill -KILL "$1" 2>/dev/null
            wait "$1" 2>/dev/null
            MSG="still running after $3s, at totalProcessed $(processed "$2") (log: $2)"
            return 1
        fi
        sleep 0.3
    done
    wait "$1"
    rc=$?
    if [[ $rc -ne 0 ]] || ! grep -q '"stage":"ShutdownComplete"' "$2"; then
        MSG="exit code $rc, last: $(grep -v '^=====' "$2" | grep -m 1 -E 'Exception|ERROR' | cut -c 1-300)$(tail -n 1 "$2" | cut -c 1-200) (log: $2)"
        return 1
    fi
    MSG="$(processed "$2") records"
}

copier_step() {
    mkdir -p "$COPIER_DIR"
    CIN="apps-copier-$RUN_ID-input"
    COUT="apps-copier-$RUN_ID-output"
    local n="${APPS_COPIER_RECORDS:-3000}" msg p0 p1 log0="$COPIER_DIR/copier-0.log" log1="$COPIER_DIR/copier-1a.log"
    if msg="$(tool create-topics "$BOOTSTRAP" 2 "$CIN" "$COUT")" && msg+="; $(tool produce-seq "$BOOTSTRAP" "$CIN" 2 "$n")"; then
        pass copier_input "$msg"
    else
        fail copier_input "$msg (log: $TOOL_LOG)"
        skip copier "no input"
        return
    fi
    # partition 0: one copier to the end (offsets sent with the group id, the older API);
    # partition 1: a copier with the group metadata (KIP-447), killed -9 a third of the way,
    # then a new one with the same transactional id and group
    copier "$log0" 0 "apps-copier-$RUN_ID-0"
    p0=$SPAWNED
    copier "$log1" 1 "apps-copier-$RUN_ID-1" --use-group-metadata
    p1=$SPAWNED
    local deadline=$((SECONDS + WAIT)) at=""
    while kill -0 "$p1" 2>/dev/null && (( SECONDS < deadline )); do
        at="$(processed "$log1")"
        [[ -n "$at" ]] && (( at >= n / 3 )) && break
        sleep 0.1
    done
    if ! kill -0 "$p1" 2>/dev/null; then
        wait "$p1" 2>/dev/null
        fail copier_kill "the partition-1 copier exited before it could be killed (at totalProcessed ${at:-none} of $n; APPS_COPIER_RECORDS) (log: $log1)"
    elif [[ -z "$at" ]] || (( at < n / 3 )); then
        fail copier_kill "the partition-1 copier got to totalProcessed ${at:-none} of $n in ${WAIT}s (log: $log1)"
        kill -KILL "$p1" 2>/dev/null
        wait "$p1" 2>/dev/null
    else
        kill -KILL "$p1" 2>/dev/null
        wait "$p1" 2>/dev/null
        pass copier_kill "the partition-1 copier killed -9 at totalProcessed $at of $n"
    fi
    log1="$COPIER_DIR/copier-1b.log"
    copier "$log1" 1 "apps-copier-$RUN_ID-1" --use-group-metadata
    p1=$SPAWNED
    local ok=1 m0 m1
    wait_copier "$p0" "$log0" "$((WAIT * 2))" || ok=0
    m0="$MSG"
    wait_copier "$p1" "$log1" "$((WAIT * 2))" || ok=0
    m1="$MSG"
    if (( ok )); then pass copier_run "partition 0: $m0; partition 1 after the kill: $m1"; else
        fail copier_run "partition 0: $m0; partition 1 after the kill: $m1"
    fi
    if msg="$(tool verify-copy "$BOOTSTRAP" "$CIN" "$COUT" "$WAIT")"; then
        if [[ "$msg" == *"aborted=0 "* ]]; then
            fail copier_exactly_once "$msg, but no aborted record in the output: --enable-random-aborts aborted nothing that reached the log"
        else
            pass copier_exactly_once "$msg"
        fi
    else
        fail copier_exactly_once "$msg (log: $TOOL_LOG)"
    fi
}

# ---------------------------------------------------------------- compaction tester

TESTER_DIR="$STATE_DIR/compaction-tester"

compaction_tester_step() {
    mkdir -p "$TESTER_DIR"
    local args="${APPS_TESTER_ARGS:---messages 200000 --duplicates 10 --topics 2 --percent-deletes 10 --sleep 5}"
    local timeout_s="${APPS_TESTER_TIMEOUT:-180}" log="$TESTER_DIR/tester.log" t0=$SECONDS rc tpid nenr=0
    # its temporary files (produced and consumed rows, the sort's directories; on a failed
    # validation also the de-duplicated rows) go to TESTER_DIR
    echo "===== $(date -Is) kafka.tools.LogCompactionTester --bootstrap-server $BOOTSTRAP $args" > "$log"
    # shellcheck disable=SC2086
    timeout -k 10 "$timeout_s" "$JAVA" "${JVM_OPTS[@]}" -Dapps.log.level=warn -Djava.io.tmpdir="$TESTER_DIR" \
        -cp "$TESTER_LIB/*" kafka.tools.LogCompactionTester --bootstrap-server "$BOOTSTRAP" $args \
        >> "$log" 2>&1 < /dev/null &
    tpid=$!
    PIDS+=("$tpid")
    # The tester sends without a callback: a refused produce only shows as the producer's WARN
    # lines, and it fails when the records expire (delivery.timeout.ms, 2 minutes) with nothing
    # consumed. NOT_ENOUGH_REPLICAS never clears on its replication-factor-1 topics: stop it there.
    while kill -0 "$tpid" 2>/dev/null; do
        nenr="$(grep -c 'Error: NOT_ENOUGH_REPLICAS' "$log")"
        if (( nenr >= 5 )); then
            kill -TERM "$tpid" 2>/dev/null
            break
        fi
        sleep 0.5
    done
    wait "$tpid"
    rc=$?
    local secs=$((SECONDS - t0)) summary validated topics
    # "400000 rows of data produced, 84667 rows of data consumed (78.8% reduction)."
    summary="$(grep -E '^[0-9]+ rows of data produced, [0-9]+ rows of data consumed' "$log" | tail -n 1)"
    validated="$(grep -E '^Validated [0-9]+ values' "$log" | tail -n 1)"
    topics="$(sed -n 's/^Producing .*to topics //p' "$log" | tail -n 1)"
    if [[ $rc == 0 ]] && grep -q '^Data verification is completed' "$log" && [[ -n "$summary" ]]; then
        local produced consumed reduction
        read -r produced consumed reduction <<< "$(sed -E 's/^([0-9]+) rows .* ([0-9]+) rows of data consumed \(([-0-9.]+)% reduction.*/\1 \2 \3/' <<< "$summary")"
        # "Validated 36007 values, 0 mismatches."
        validated="$(sed -E 's/^Validated ([0-9]+) values, ([0-9]+) mismatches.*/\1 latest values per key validated, \2 mismatches/' <<< "$validated")"
        pass compaction_tester "$produced rows produced, $consumed consumed ($reduction% reduction), $validated; ${secs}s"
        if (( consumed < produced )); then
            pass compaction_tester_reduced "$reduction% fewer rows consumed than produced"
        else
            local why="nothing compacted: $consumed rows consumed of $produced produced from $topics; either no segment rolled (the tester's topics take the broker's default segment size and roll time, and an active segment is never cleaned) or the cleaner did not get to them before the consumer read them (its backoff; the tester's --sleep): start the broker with 1 MiB segments and a 1 s cleaner backoff, see the header"
            if [[ "${APPS_REQUIRE_TESTER_REDUCTION:-0}" == 1 ]]; then fail compaction_tester_reduced "$why (log: $log)"; else skip compaction_tester_reduced "$why"; fi
        fi
        return
    fi
    local why
    if (( nenr >= 5 )); then
        why="stopped after ${secs}s: the broker refused the tester's acks=all produce to its replication-factor-1 topics with NOT_ENOUGH_REPLICAS $nenr times ($(grep -m 1 -o 'Error Message: .*' "$log" | cut -c 1-200)); Apache Kafka 4.1 takes min(min.insync.replicas, replicas) as the minimum ISR and accepts them"
    elif [[ $rc == 124 || $rc == 137 ]]; then
        why="still running after ${timeout_s}s (APPS_TESTER_TIMEOUT)"
    elif why="$(grep -m 1 '^Data validation failed' "$log")"; then
        why="$why; ${validated:-no values validated}"
    elif why="$(grep -m 1 -E '^Exception in thread|Exception: ' "$log")"; then
        why="exit code $rc: $(cut -c 1-300 <<< "$why")"
    else
        why="exit code $rc"
    fi
    local nerr
    nerr="$(grep -c 'Got error produce response' "$log")"
    (( nerr == 0 || nenr >= 5 )) || why="$why; the producer got $nerr error responses, the first: $(grep -m 1 -o 'Error: .*' "$log" | cut -c 1-200)"
    fail compaction_tester "$why${summary:+; $summary}${topics:+; topics $topics}; kept its files in $TESTER_DIR (log: $log)"
    skip compaction_tester_reduced "the tester failed"
}

# ---------------------------------------------------------------- main

echo "# apps against $BOOTSTRAP, replication factor $RF, run $RUN_ID, steps $STEPS, state $STATE_DIR"
T0=$SECONDS
for step in $STEPS; do
    T1=$SECONDS
    "${step}_step"
    echo "# $step: $((SECONDS - T1))s"
done
echo "# total $((SECONDS - T0))s"
(( FAILS == 0 )) || exit 1
