#!/usr/bin/env bash
# Transactions scenario for Apache Kafka's command-line tools (kafka-tools 4.1.1):
# kafka-producer-perf-test --transactional-id, kafka-transactions (list, describe,
# describe-producers, find-hanging, abort) and kafka-console-consumer --isolation-level, run
# through `scripts/kafka-reference.sh run-tool`.
#
# Usage: compat-tests/kafka-cli/scenario_txn.sh BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
#
#   produce         kafka-topics --create (2 partitions); kafka-producer-perf-test
#                   --transactional-id A --transaction-duration-ms 100 (2000 records, every
#                   transaction committed); kafka-transactions list / describe (A CompleteCommit);
#                   a second perf producer (transactional id B, one 10-minute transaction) is
#                   killed -9 with its transaction open: describe-producers shows it open on both
#                   partitions from the offsets the log ended at before, describe shows B Ongoing
#                   with both partitions, find-hanging --max-transaction-timeout 0 reports nothing
#                   (the coordinator knows the transaction); kafka-transactions abort
#                   --start-offset aborts it on partition 0 only (partition 1 stays open); a new
#                   perf producer with id B (50 records) fences the dead one: its transaction is
#                   aborted on partition 1 too, B is CompleteCommit with a newer epoch
#   verify          kafka-console-consumer --isolation-level read_committed reads exactly the
#                   2050 committed records; read_uncommitted also the dead producer's; describe
#                   B: the same producer id and epoch
#   restart-verify  the same after the broker restart (the coordinator reloaded B)
#   cleanup         kafka-topics --delete, then --list
#   all             every phase in a row, without a restart (default); STATE_DIR defaults to a
#                   temporary directory
#
# Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines; exits 1 if any check failed.
# Environment: KAFKA_REF, CHECK_PYTHON, TOOL_TIMEOUT, COMPAT_REPLICATION_FACTOR (see lib.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PHASES="all|produce|verify|restart-verify|cleanup"   # read by lib.sh
# shellcheck source=lib.sh
source "$HERE/lib.sh"
TXNS=org.apache.kafka.tools.TransactionsCommand
PARTITIONS=2
FIRST=2000     # records of the committed perf run
FENCE=50       # records of the run that fences the dead producer

tc() { "$CHECK_PYTHON" "$HERE/txn_checks.py" "$@"; }
# check NAME ARGS...: a txn_checks.py check; its PASS/FAIL line goes out, a FAIL sets FAILED
check() { "$CHECK_PYTHON" "$HERE/txn_checks.py" "$@" && return 0; FAILED=1; return 1; }

txns() {  # txns OUT SUBCOMMAND ARGS...: kafka-transactions, output to OUT; returns its status
    local out="$1" rc=0
    shift
    tool "$TXNS" --bootstrap-server "$BOOTSTRAP" "$@" > "$out" 2>&1 || rc=$?
    return $rc
}

perf() {  # perf OUT TID COUNT: kafka-producer-perf-test, transactions of 100 ms
    local rc=0
    tool "$PERF" --topic "$(cat "$STATE/topic")" --num-records "$3" --record-size 100 --throughput -1 \
        --transactional-id "$2" --transaction-duration-ms 100 \
        --producer-props "bootstrap.servers=$BOOTSTRAP" client.id=compat-cli-txn-perf > "$1" 2>&1 || rc=$?
    return $rc
}

ends() {  # ends OUT: kafka-get-offsets --time -1, printed as "0=E0 1=E1"
    local rc=0
    tool "$GET_OFFSETS" --bootstrap-server "$BOOTSTRAP" --topic "$(cat "$STATE/topic")" --time -1 > "$1" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] && tc get-ends "$1" "$(cat "$STATE/topic")"
}

OPEN_PID=""
stop_open_producer() {
    if [[ -n "$OPEN_PID" ]]; then
        kill -KILL "$OPEN_PID" 2>/dev/null || true
        wait "$OPEN_PID" 2>/dev/null || true
        OPEN_PID=""
    fi
}
trap 'stop_open_producer; [[ -z "${CLEAN_STATE:-}" ]] || rm -rf "$STATE"' EXIT
# lib.sh removes a temporary STATE_DIR in its own EXIT trap, which the line above replaced
[[ -n "${3:-}" ]] || CLEAN_STATE=1

phase_produce() {
    local topic rc=0 out
    topic="compat-cli-txn-$(date +%s)-$RANDOM"
    echo "$topic" > "$STATE/topic"
    echo "$topic-a" > "$STATE/tid-a"
    echo "$topic-b" > "$STATE/tid-b"
    rm -f "$STATE/created" "$STATE/produced" "$STATE/killed" "$STATE/b-pid" "$STATE/b-epoch"
    echo "# topic $topic"
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" --partitions $PARTITIONS \
        --replication-factor "$REPLICATION_FACTOR" > "$STATE/create.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] || ! grep -q "Created topic $topic" "$STATE/create.out"; then
        fail txn_create_topics "kafka-topics --create: $(tool_why "$STATE/create.out" $rc)"
        return
    fi
    touch "$STATE/created"
    describe_until txn_create_topics "$topic" $PARTITIONS 15 || return 0

    # -- committed transactions of 100 ms
    local tid_a tid_b pid_a
    tid_a="$(cat "$STATE/tid-a")"
    tid_b="$(cat "$STATE/tid-b")"
    rc=0
    perf "$STATE/perf-a.out" "$tid_a" $FIRST || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail txn_perf_producer "kafka-producer-perf-test --transactional-id: $(tool_why "$STATE/perf-a.out" $rc)"
        return
    fi
    check perf txn_perf_producer $FIRST "$STATE/perf-a.out" || return 0
    txns "$STATE/list.out" list || true
    check list txn_cli_list "$tid_a" CompleteCommit "$STATE/list.out" || true
    pid_a="$(tc get-pid "$STATE/list.out" "$tid_a" || echo -)"
    txns "$STATE/describe-a.out" describe --transactional-id "$tid_a" || true
    check describe txn_cli_describe "$tid_a" CompleteCommit "$STATE/describe-a.out" "$pid_a" - "" || true

    # -- a producer dies (kill -9) inside a 10-minute transaction that spans both partitions
    local e0 e1 opts=""
    e0="$(ends "$STATE/ends-0.out")" || { fail txn_cli_open "kafka-get-offsets: $(tool_why "$STATE/ends-0.out" 1)"; return; }
    [[ -s "$CDS_DIR/$PERF.jsa" ]] && opts="-XX:SharedArchiveFile=$CDS_DIR/$PERF.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"
    # record size 1000: the sticky partitioner moves on every 16 records, so both partitions get
    # some within a fraction of a second; kafka-reference.sh run-tool execs java: $! is the JVM
    JAVA_TOOL_OPTIONS="$opts" "$KAFKA_REF" run-tool "$PERF" --topic "$topic" --num-records 100000 \
        --record-size 1000 --throughput 100 --transactional-id "$tid_b" --transaction-duration-ms 600000 \
        --producer-props "bootstrap.servers=$BOOTSTRAP" transaction.timeout.ms=300000 client.id=compat-cli-txn-open \
        > "$STATE/perf-b.out" 2>&1 &
    OPEN_PID=$!
    local deadline=$((SECONDS + 40)) grown=0
    while (( SECONDS < deadline )); do
        sleep 1
        e1="$(ends "$STATE/ends-1.out")" || continue
        if "$CHECK_PYTHON" - "$e0" "$e1" <<'EOF'
import sys
a = dict(x.split("=") for x in sys.argv[1].split())
b = dict(x.split("=") for x in sys.argv[2].split())
sys.exit(0 if all(int(b[p]) > int(a[p]) for p in a) else 1)
EOF
        then grown=1; break; fi
        kill -0 "$OPEN_PID" 2>/dev/null || break
    done
    stop_open_producer
    if [[ $grown -ne 1 ]]; then
        fail txn_cli_open "the transactional perf producer did not write to both partitions within 40s (ends before $e0, last $e1): $(tool_why "$STATE/perf-b.out" 1)"
        return
    fi
    e1="$(ends "$STATE/ends-1.out")" || { fail txn_cli_open "kafka-get-offsets: $(tool_why "$STATE/ends-1.out" 1)"; return; }
    echo "# the killed producer's transaction: log ends $e0 before, $e1 after"
    "$CHECK_PYTHON" - "$e0" "$e1" > "$STATE/killed" <<'EOF'
import sys
a = dict(x.split("=") for x in sys.argv[1].split())
b = dict(x.split("=") for x in sys.argv[2].split())
print(sum(int(b[p]) - int(a[p]) for p in a))
EOF
    local s0="${e0%% *}" s1="${e0##* }" pid_b ok=1
    s0="${s0#*=}"
    s1="${s1#*=}"
    txns "$STATE/describe-b.out" describe --transactional-id "$tid_b" || true
    pid_b="$(tc get-pid "$STATE/describe-b.out" "$tid_b" || echo -)"
    echo "$pid_b" > "$STATE/b-pid"
    txns "$STATE/producers-0.out" describe-producers --topic "$topic" --partition 0 || true
    txns "$STATE/producers-1.out" describe-producers --topic "$topic" --partition 1 || true
    check open-at txn_cli_open "$STATE/producers-0.out" 0 "$s0" "$pid_b" || ok=0
    [[ $ok -eq 1 ]] && { check open-at txn_cli_open "$STATE/producers-1.out" 1 "$s1" "$pid_b" || ok=0; }
    [[ $ok -eq 1 ]] && { check describe txn_cli_open "$tid_b" Ongoing "$STATE/describe-b.out" "$pid_b" - "$topic-0,$topic-1" || ok=0; }
    [[ $ok -eq 1 ]] || return 0

    # -- known to the coordinator: not hanging, however short the timeout
    txns "$STATE/hanging.out" find-hanging --topic "$topic" --max-transaction-timeout 0 || true
    check no-hanging txn_cli_find_hanging "$STATE/hanging.out" || true

    # -- kafka-transactions abort on partition 0 (WriteTxnMarkers to its leader); 1 stays open
    rc=0
    txns "$STATE/abort.out" abort --topic "$topic" --partition 0 --start-offset "$s0" || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail txn_cli_abort "kafka-transactions abort --partition 0 --start-offset $s0: $(tool_why "$STATE/abort.out" $rc)"
        return
    fi
    ok=1
    txns "$STATE/producers-0b.out" describe-producers --topic "$topic" --partition 0 || true
    txns "$STATE/producers-1b.out" describe-producers --topic "$topic" --partition 1 || true
    check not-open txn_cli_abort "$STATE/producers-0b.out" 0 || ok=0
    [[ $ok -eq 1 ]] && { check open-at txn_cli_abort "$STATE/producers-1b.out" 1 "$s1" "$pid_b" || ok=0; }
    [[ $ok -eq 1 ]] && pass txn_cli_abort

    # -- a new producer with id B fences the dead one and aborts the rest of its transaction
    local epoch_b
    epoch_b="$(tc get-epoch "$STATE/describe-b.out" "$tid_b" || echo 0)"
    rc=0
    perf "$STATE/perf-b2.out" "$tid_b" $FENCE || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail txn_cli_fence "kafka-producer-perf-test --transactional-id $tid_b: $(tool_why "$STATE/perf-b2.out" $rc)"
        return
    fi
    ok=1
    QUIET_PASS=1 check perf txn_cli_fence $FENCE "$STATE/perf-b2.out" || ok=0
    txns "$STATE/producers-1c.out" describe-producers --topic "$topic" --partition 1 || true
    [[ $ok -eq 1 ]] && { check not-open txn_cli_fence "$STATE/producers-1c.out" 1 || ok=0; }
    txns "$STATE/describe-b2.out" describe --transactional-id "$tid_b" || true
    [[ $ok -eq 1 ]] && { check describe txn_cli_fence "$tid_b" CompleteCommit "$STATE/describe-b2.out" "$pid_b" $((epoch_b + 1)) "" || ok=0; }
    if [[ $ok -eq 1 ]]; then
        tc get-epoch "$STATE/describe-b2.out" "$tid_b" > "$STATE/b-epoch"
        touch "$STATE/produced"
    fi
}

consume() {  # consume NAME ISOLATION COUNT
    local topic rc=0
    topic="$(cat "$STATE/topic")"
    tool "$CONSUMER" --bootstrap-server "$BOOTSTRAP" --topic "$topic" --from-beginning \
        --isolation-level "$2" --max-messages $(($3 + 1)) --timeout-ms 5000 \
        --consumer-property client.id=compat-cli-txn-consumer --consumer-property fetch.max.wait.ms=200 \
        --property print.partition=true \
        > "$STATE/consumed-$1.txt" 2> "$STATE/consume-$1.err" || rc=$?
    # --timeout-ms ends the consumer with status 0 in 4.1 after "Processed a total of N messages"
    [[ $rc -ne 0 ]] && echo "consumer exit status $rc" >> "$STATE/consume-$1.err"
    check consumed "$1" "$STATE/consumed-$1.txt" "$STATE/consume-$1.err" "$3" $PARTITIONS || true
}

phase_verify() {
    [[ -f "$STATE/produced" ]] || { fail txn_cli_read_committed "not run: the produce phase did not complete"; return; }
    local killed tid_b
    killed="$(cat "$STATE/killed")"
    tid_b="$(cat "$STATE/tid-b")"
    consume txn_cli_read_committed read_committed $((FIRST + FENCE))
    consume txn_cli_read_uncommitted read_uncommitted $((FIRST + FENCE + killed))
    local deadline=$((SECONDS + 30))
    while :; do
        txns "$STATE/describe-b3.out" describe --transactional-id "$tid_b" || true
        # after a restart the coordinator may still be loading: asked again for up to 30 s
        if tc describe txn_cli_describe_persisted "$tid_b" CompleteCommit "$STATE/describe-b3.out" \
                "$(cat "$STATE/b-pid")" "$(cat "$STATE/b-epoch")" "" > "$STATE/describe-b3.check"; then
            cat "$STATE/describe-b3.check"
            break
        fi
        if (( SECONDS >= deadline )); then cat "$STATE/describe-b3.check"; FAILED=1; break; fi
        sleep 1
    done
}

phase_cleanup() {
    [[ -f "$STATE/created" ]] || { fail txn_delete_topics "not run: the topic was not created in the produce phase"; return; }
    local topic rc=0
    topic="$(cat "$STATE/topic")"
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --delete --topic "^$topic\$" > "$STATE/delete.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] || grep -qE 'Exception|ERROR' "$STATE/delete.out"; then
        fail txn_delete_topics "kafka-topics --delete: $(tool_why "$STATE/delete.out" $rc)"
        return
    fi
    local deadline=$((SECONDS + 20))
    while :; do
        tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --list > "$STATE/list-topics.out" 2>&1 || true
        if ! grep -qx "$topic" "$STATE/list-topics.out" && ! grep -qE 'Exception|ERROR' "$STATE/list-topics.out"; then
            pass txn_delete_topics
            return
        fi
        if (( SECONDS >= deadline )); then
            fail txn_delete_topics "deleted, but kafka-topics --list 20s later: $(tool_why "$STATE/list-topics.out" 0)"
            return
        fi
        sleep 1
    done
}

case "$PHASE" in
    all) phase_produce; phase_verify; phase_verify; phase_cleanup ;;
    produce) phase_produce ;;
    verify|restart-verify) phase_verify ;;
    cleanup) phase_cleanup ;;
esac
exit $FAILED
