#!/usr/bin/env bash
# Client compatibility scenario for Apache Kafka's own command-line tools (kafka-tools 4.1.1),
# run from the jars scripts/kafka-reference.sh caches (`run-tool <MainClass>`).
#
# Usage: compat-tests/kafka-cli/scenario.sh BOOTSTRAP [all|produce|verify|cleanup] [STATE_DIR]
#
#   produce  kafka-topics --create (2 partitions, max.message.bytes=10000), --alter to 3
#            partitions, --describe; kafka-configs --alter (retention.ms) and --describe --all;
#            kafka-console-producer with every codec (keys, headers, null values), a record near
#            max.message.bytes and one above it (RecordTooLargeException);
#            kafka-producer-perf-test on a second topic as a smoke test
#   verify   kafka-topics --describe; kafka-console-consumer from the start (compares keys,
#            values, headers, order, timestamps); kafka-get-offsets --time (offsets by
#            timestamp). Run before and after the broker restart.
#   cleanup  kafka-delete-records on a partition of the perf-test topic, then kafka-get-offsets
#            --time -2 (the earliest offset is the one deleted to); kafka-topics --delete (both
#            topics, one regular expression), then --list;
#            kafka-metadata-quorum is SKIPped (cluster scenario)
# The consumer-group tools (kafka-consumer-groups) are in scenario_groups.sh.
#   all      the three in a row (default); STATE_DIR defaults to a temporary directory
#
# Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines; exits 1 if any check failed.
# Environment: KAFKA_REF (default scripts/kafka-reference.sh), CHECK_PYTHON (default python3),
# TOOL_TIMEOUT (seconds per tool run, default 60), COMPAT_REPLICATION_FACTOR (replication factor
# of the topics it creates, default 1; --describe expects that many replicas).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PHASES="all|produce|verify|cleanup"   # read by lib.sh
# shellcheck source=lib.sh
source "$HERE/lib.sh"
CODECS=(none gzip snappy lz4 zstd)
MAX_MESSAGE_BYTES=10000

phase_produce() {
    local topic rc
    topic="compat-cli-$(date +%s)-$RANDOM"
    echo "$topic" > "$STATE/topic"
    rm -f "$STATE/expected.jsonl" "$STATE/windows.txt" "$STATE/created" "$STATE/perf-created"
    echo "# topic $topic"

    # -- kafka-topics --create, --alter --partitions, --describe
    rc=0
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" --partitions 2 \
        --replication-factor "$REPLICATION_FACTOR" --config "max.message.bytes=$MAX_MESSAGE_BYTES" > "$STATE/create.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q "Created topic $topic" "$STATE/create.out"; then
        touch "$STATE/created"
        pass create_topic
    else
        fail create_topic "kafka-topics --create: $(tool_why "$STATE/create.out" $rc)"
        return
    fi
    rc=0
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --alter --topic "$topic" --partitions 3 \
        > "$STATE/alter.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && ! grep -qE 'Exception|ERROR' "$STATE/alter.out"; then
        pass admin_create_partitions
    else
        fail admin_create_partitions "kafka-topics --alter --partitions 3: $(tool_why "$STATE/alter.out" $rc)"
    fi
    describe_until admin_describe_topic "$topic" 3 15 "max.message.bytes=$MAX_MESSAGE_BYTES" || true

    # -- kafka-configs --alter, --describe --all (defaults included)
    rc=0
    tool "$CONFIGS" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics --entity-name "$topic" \
        --add-config retention.ms=86400000 > "$STATE/configs-alter.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q "Completed updating config for topic $topic" "$STATE/configs-alter.out"; then
        pass admin_alter_configs
    else
        fail admin_alter_configs "kafka-configs --alter --add-config retention.ms=86400000: $(tool_why "$STATE/configs-alter.out" $rc)"
    fi
    tool "$CONFIGS" --bootstrap-server "$BOOTSTRAP" --describe --all --entity-type topics --entity-name "$topic" \
        > "$STATE/configs-describe.out" 2>&1 || true
    checks configs admin_describe_configs "$topic" "$STATE/configs-describe.out"

    skip produce_timestamps "kafka-console-producer cannot set record timestamps"

    # -- kafka-console-producer, one run per codec: keys, headers, <NULL> values and keys
    local codec start end
    for codec in "${CODECS[@]}"; do
        "$CHECK_PYTHON" "$HERE/checks.py" gen "$STATE" "$codec"
        start="$(now_ms)"
        rc=0
        # fed slowly with a 50 ms linger: batches hold records with several timestamps
        "$CHECK_PYTHON" "$HERE/checks.py" feed "$STATE/input-$codec.txt" \
            | tool "$PRODUCER" --bootstrap-server "$BOOTSTRAP" --topic "$topic" --compression-codec "$codec" \
                --property parse.key=true --property parse.headers=true --property null.marker='<NULL>' \
                --producer-property linger.ms=50 --producer-property batch.size=8000 \
                --producer-property "client.id=compat-cli-$codec" \
                > "$STATE/produce-$codec.out" 2>&1 || rc=$?
        end="$(now_ms)"
        echo "$codec $start $end" >> "$STATE/windows.txt"
        if [[ $rc -ne 0 ]]; then
            fail "produce_$codec" "kafka-console-producer --compression-codec $codec: $(tool_why "$STATE/produce-$codec.out" $rc)"
        else
            checks produced "produce_$codec" "$STATE/produce-$codec.out"
        fi
        sleep 0.05
    done

    # -- a record near max.message.bytes, one above it, one after it (one producer run)
    "$CHECK_PYTHON" "$HERE/checks.py" gen-large "$STATE"
    start="$(now_ms)"
    rc=0
    tool "$PRODUCER" --bootstrap-server "$BOOTSTRAP" --topic "$topic" \
        --property parse.key=true --property parse.headers=true --property null.marker='<NULL>' \
        --producer-property linger.ms=0 --producer-property client.id=compat-cli-large \
        < "$STATE/input-large.txt" > "$STATE/produce-large.out" 2>&1 || rc=$?
    echo "large $start $(now_ms)" >> "$STATE/windows.txt"
    if [[ $rc -ne 0 ]]; then
        fail large_record "kafka-console-producer: $(tool_why "$STATE/produce-large.out" $rc)"
        fail message_too_large "kafka-console-producer: $(tool_why "$STATE/produce-large.out" $rc)"
    else
        checks too-large "$STATE" "$STATE/produce-large.out"
    fi

    # -- kafka-producer-perf-test on its own topic (smoke test)
    rc=0
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --create --topic "$topic-perf" --partitions 3 \
        --replication-factor "$REPLICATION_FACTOR" > "$STATE/perf-create.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail producer_perf_test "kafka-topics --create $topic-perf: $(tool_why "$STATE/perf-create.out" $rc)"
    else
        touch "$STATE/perf-created"
        rc=0
        tool "$PERF" --topic "$topic-perf" --num-records 20000 --record-size 100 --throughput -1 \
            --producer-props "bootstrap.servers=$BOOTSTRAP" acks=all linger.ms=5 client.id=compat-cli-perf \
            max.block.ms=20000 request.timeout.ms=10000 delivery.timeout.ms=30000 \
            > "$STATE/perf.out" 2>&1 || rc=$?
        if [[ $rc -eq 0 ]] && grep -qE '^20000 records sent' "$STATE/perf.out" && ! grep -q 'Exception' "$STATE/perf.out"; then
            pass producer_perf_test
            grep -E '^20000 records sent' "$STATE/perf.out" | sed 's/^/# perf: /' >&2
        else
            fail producer_perf_test "kafka-producer-perf-test --num-records 20000: $(tool_why "$STATE/perf.out" $rc)"
        fi
    fi
}

phase_verify() {
    [[ -f "$STATE/topic" && -f "$STATE/created" ]] || { fail metadata "topic was not created in the produce phase"; return; }
    local topic rc n
    topic="$(cat "$STATE/topic")"

    # -- metadata (waits for the broker to be back after a restart)
    describe_until metadata "$topic" 3 30 || true
    # the partitions added and the configs set in the produce phase (same --describe output)
    checks describe-topic admin_persisted "$topic" 3 "$STATE/describe-metadata.out" \
        "max.message.bytes=$MAX_MESSAGE_BYTES,retention.ms=86400000"

    skip content_timestamps "kafka-console-producer cannot set record timestamps (no such records)"

    # -- kafka-console-consumer: everything from offset 0 (a throwaway group, nothing committed)
    n="$(wc -l < "$STATE/expected.jsonl")"
    rc=0
    tool "$CONSUMER" --bootstrap-server "$BOOTSTRAP" --topic "$topic" --from-beginning \
        --group "$topic-verify-$RANDOM" --consumer-property enable.auto.commit=false \
        --max-messages "$n" --timeout-ms 20000 \
        --consumer-property client.id=compat-cli-consumer --consumer-property fetch.max.wait.ms=200 \
        --property print.timestamp=true --property print.partition=true --property print.offset=true \
        --property print.headers=true --property print.key=true --property null.literal='<NULL>' \
        > "$STATE/consumed.txt" 2> "$STATE/consume.err" || rc=$?
    [[ $rc -ne 0 ]] && echo "consumer exit status $rc" >> "$STATE/consume.err"
    local queries
    queries="$("$CHECK_PYTHON" "$HERE/checks.py" consume "$STATE" "$STATE/consumed.txt" "$STATE/consume.err")" || FAILED=1
    grep -v '^QUERY ' <<< "$queries" || true

    # -- kafka-get-offsets --time: a record inside the uncompressed / the zstd records
    local line codec ts name
    for codec in none zstd; do
        name=offsets_for_times
        [[ $codec == zstd ]] && name=offsets_for_times_compressed
        ts="$(grep "^QUERY $codec " <<< "$queries" | awk '{print $3}' || true)"
        if [[ -z "$ts" ]]; then
            fail "$name" "no $codec records with distinct timestamps were consumed to look up"
            continue
        fi
        tool "$GET_OFFSETS" --bootstrap-server "$BOOTSTRAP" --topic "^$topic\$" --time "$ts" \
            > "$STATE/offsets-$codec.out" 2>&1 || true
        checks offsets "$name" "$STATE" "$topic" "$ts" "$STATE/offsets-$codec.out"
    done
}

phase_cleanup() {
    [[ -f "$STATE/topic" && -f "$STATE/created" ]] || { fail delete_topic "topic was not created in the produce phase"; return; }
    local topic rc
    topic="$(cat "$STATE/topic")"

    # -- kafka-delete-records: partition 0 of the perf-test topic then starts at offset 10
    if [[ -f "$STATE/perf-created" ]]; then
        printf '{"version":1,"partitions":[{"topic":"%s","partition":0,"offset":10}]}\n' \
            "$topic-perf" > "$STATE/delete-records.json"
        rc=0
        tool "$DELETE_RECORDS" --bootstrap-server "$BOOTSTRAP" \
            --offset-json-file "$STATE/delete-records.json" > "$STATE/delete-records.out" 2>&1 || rc=$?
        if [[ $rc -eq 0 ]] && grep -q "low_watermark: 10\b" "$STATE/delete-records.out"; then
            rc=0
            tool "$GET_OFFSETS" --bootstrap-server "$BOOTSTRAP" --topic "^$topic-perf\$" \
                --partitions 0 --time -2 > "$STATE/earliest.out" 2>&1 || rc=$?
            if [[ $rc -eq 0 ]] && grep -qx "$topic-perf:0:10" "$STATE/earliest.out"; then
                pass delete_records
            else
                fail delete_records "kafka-get-offsets --time -2 after kafka-delete-records: $(tool_why "$STATE/earliest.out" $rc)"
            fi
        else
            fail delete_records "kafka-delete-records: $(tool_why "$STATE/delete-records.out" $rc)"
        fi
    fi

    # both topics in one run: --topic takes a regular expression
    local pattern="^$topic\$"
    [[ -f "$STATE/perf-created" ]] && pattern="^$topic(-perf)?\$"
    rc=0
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --delete --topic "$pattern" > "$STATE/delete.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] || grep -qE 'Exception|ERROR' "$STATE/delete.out"; then
        fail delete_topic "kafka-topics --delete: $(tool_why "$STATE/delete.out" $rc)"
    else
        local deadline=$((SECONDS + 20)) res
        while :; do
            tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --list > "$STATE/list.out" 2>&1 || true
            if res="$("$CHECK_PYTHON" "$HERE/checks.py" listed delete_topic "$topic" "$STATE/list.out" absent)" \
                    && ! grep -qx "$topic-perf" "$STATE/list.out"; then
                echo "$res"
                break
            fi
            if (( SECONDS >= deadline )); then
                fail delete_topic "deleted, but kafka-topics --list still lists $(grep -E "^$topic(-perf)?\$" "$STATE/list.out" | tr '\n' ' ') 20s later"
                break
            fi
            sleep 1
        done
    fi

    skip metadata_quorum "kafka-metadata-quorum (DescribeQuorum) belongs to the cluster scenario"
}

case "$PHASE" in
    all) phase_produce; phase_verify; phase_cleanup ;;
    produce) phase_produce ;;
    verify) phase_verify ;;
    cleanup) phase_cleanup ;;
esac
exit "$FAILED"
