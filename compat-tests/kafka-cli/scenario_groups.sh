#!/usr/bin/env bash
# Consumer-group scenario for Apache Kafka's command-line tools (kafka-tools 4.1.1):
# kafka-console-consumer as a group member and kafka-consumer-groups, run through
# `scripts/kafka-reference.sh run-tool`.
#
# Usage: compat-tests/kafka-cli/scenario_groups.sh BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
#
#   produce         kafka-topics --create (6 partitions), --describe; kafka-console-producer:
#                   120 keyed records
#   verify          kafka-console-consumer --group --from-beginning reads all 120 once and
#                   commits on exit; kafka-consumer-groups --list --state (Empty), --describe
#                   (committed at the end, lag 0); 30 more records
#   restart-verify  (after the broker restart) kafka-consumer-groups --describe: the commits
#                   survived, lag 30; kafka-console-consumer --group (no --from-beginning) reads
#                   exactly the 30 new records; --reset-offsets --to-earliest --execute
#   cleanup         kafka-consumer-groups --delete; kafka-topics --delete, then --list
#   all             every phase in a row, without a restart (default); STATE_DIR defaults to a
#                   temporary directory
#
# A three-member group with a rebalance is not something these tools can stage: the Java,
# confluent-kafka scenarios cover it. Prints `PASS name` / `FAIL name: why` lines; exits 1 if
# any check failed. Environment: KAFKA_REF, CHECK_PYTHON, TOOL_TIMEOUT, COMPAT_REPLICATION_FACTOR
# (see lib.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PHASES="all|produce|verify|restart-verify|cleanup"   # read by lib.sh
# shellcheck source=lib.sh
source "$HERE/lib.sh"
PARTITIONS=6
FIRST=120
MORE=30

produce_keys() {  # produce_keys NAME KEYS: kafka-console-producer < STATE/keys-KEYS.txt
    local rc=0
    tool "$PRODUCER" --bootstrap-server "$BOOTSTRAP" --topic "$(cat "$STATE/topic")" \
        --property parse.key=true --producer-property linger.ms=5 \
        --producer-property client.id=compat-cli-groups-producer \
        < "$STATE/keys-$2.txt" > "$STATE/produce-$2.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail "$1" "kafka-console-producer: $(tool_why "$STATE/produce-$2.out" $rc)"
        return 1
    fi
    gate produced "$1" "$STATE/produce-$2.out"
}

consume_group() {  # consume_group NAME KEYS COUNT [--from-beginning]
    local rc=0 topic group
    topic="$(cat "$STATE/topic")"
    group="$(cat "$STATE/group")"
    tool "$CONSUMER" --bootstrap-server "$BOOTSTRAP" --topic "$topic" --group "$group" ${4:+"$4"} \
        --max-messages "$3" --timeout-ms 20000 \
        --consumer-property client.id=compat-cli-groups-consumer --consumer-property fetch.max.wait.ms=200 \
        --property print.partition=true --property print.offset=true --property print.key=true \
        > "$STATE/consumed-$2.txt" 2> "$STATE/consume-$2.err" || rc=$?
    [[ $rc -ne 0 ]] && echo "consumer exit status $rc" >> "$STATE/consume-$2.err"
    gate group-consume "$1" "$STATE" "$2" "$STATE/consumed-$2.txt" "$STATE/consume-$2.err"
}

describe_group() {  # describe_group NAME LAG [SECONDS]: retried while the coordinator comes back
    local deadline=$((SECONDS + ${3:-0})) out="$STATE/group-describe-$1.out" res
    while :; do
        tool "$GROUPS_CMD" --bootstrap-server "$BOOTSTRAP" --describe --group "$(cat "$STATE/group")" > "$out" 2>&1 || true
        res="$("$CHECK_PYTHON" "$HERE/checks.py" group-describe "$1" "$STATE" "$(cat "$STATE/group")" \
            "$(cat "$STATE/topic")" "$PARTITIONS" "$2" "$out")" && { echo "$res"; return 0; }
        if (( SECONDS >= deadline )); then echo "$res"; FAILED=1; return 1; fi
        sleep 1
    done
}

phase_produce() {
    local topic rc=0
    topic="compat-cli-groups-$(date +%s)-$RANDOM"
    echo "$topic" > "$STATE/topic"
    echo "$topic-g" > "$STATE/group"
    rm -f "$STATE/created" "$STATE/ends.json" "$STATE/verified" "$STATE/resumed"
    echo "# topic $topic, group $topic-g"
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" --partitions $PARTITIONS \
        --replication-factor "$REPLICATION_FACTOR" > "$STATE/create.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] || ! grep -q "Created topic $topic" "$STATE/create.out"; then
        fail group_create_topic "kafka-topics --create --partitions $PARTITIONS: $(tool_why "$STATE/create.out" $rc)"
        return
    fi
    touch "$STATE/created"
    describe_until group_create_topic "$topic" $PARTITIONS 15 || return 0
    "$CHECK_PYTHON" "$HERE/checks.py" gen-keys "$STATE" first k $FIRST
    produce_keys group_produce first || true
}

phase_verify() {
    [[ -f "$STATE/created" ]] || { fail group_consume "not run: the topic was not created in the produce phase"; return; }
    local group
    group="$(cat "$STATE/group")"
    rm -f "$STATE/ends.json"
    # -- a console consumer in the group reads everything once, commits as it exits
    consume_group group_consume first $FIRST --from-beginning || return 0
    # -- kafka-consumer-groups --list --state, --describe
    tool "$GROUPS_CMD" --bootstrap-server "$BOOTSTRAP" --list --state > "$STATE/group-list.out" 2>&1 || true
    checks group-list group_list "$group" Empty "$STATE/group-list.out"
    describe_group group_describe 0 5 || true
    # -- records past the commit, read after the restart
    "$CHECK_PYTHON" "$HERE/checks.py" gen-keys "$STATE" more m $MORE
    produce_keys group_produce_more more && touch "$STATE/verified"
}

phase_restart_verify() {
    [[ -f "$STATE/verified" ]] || { fail group_committed_after_restart "not run: the verify phase did not complete"; return; }
    local topic group rc=0
    topic="$(cat "$STATE/topic")"
    group="$(cat "$STATE/group")"
    # -- the commits survived: CURRENT-OFFSET where the consumer stopped, LAG = the new records
    describe_group group_committed_after_restart $MORE 30 || return 0
    # -- resume from the committed offsets: exactly the new records
    consume_group group_resume_after_restart more $MORE || return 0
    # -- back to the start
    tool "$GROUPS_CMD" --bootstrap-server "$BOOTSTRAP" --reset-offsets --to-earliest --execute \
        --group "$group" --topic "$topic" > "$STATE/group-reset.out" 2>&1 || rc=$?
    checks group-reset group_reset_offsets "$topic" $PARTITIONS "$STATE/group-reset.out"
}

phase_cleanup() {
    [[ -f "$STATE/created" ]] || { fail group_delete_topic "not run: the topic was not created in the produce phase"; return; }
    local topic group rc=0
    topic="$(cat "$STATE/topic")"
    group="$(cat "$STATE/group")"
    tool "$GROUPS_CMD" --bootstrap-server "$BOOTSTRAP" --delete --group "$group" > "$STATE/group-delete.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q "Deletion of requested consumer groups ('$group') was successful" "$STATE/group-delete.out"; then
        pass group_delete
    else
        fail group_delete "kafka-consumer-groups --delete: $(tool_why "$STATE/group-delete.out" $rc)"
    fi
    rc=0
    tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --delete --topic "^$topic\$" > "$STATE/delete.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] || grep -qE 'Exception|ERROR' "$STATE/delete.out"; then
        fail group_delete_topic "kafka-topics --delete: $(tool_why "$STATE/delete.out" $rc)"
        return
    fi
    local deadline=$((SECONDS + 20))
    while :; do
        tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --list > "$STATE/list.out" 2>&1 || true
        if ! grep -qx "$topic" "$STATE/list.out" && ! grep -qE 'Exception|ERROR' "$STATE/list.out"; then
            pass group_delete_topic
            return
        fi
        if (( SECONDS >= deadline )); then
            fail group_delete_topic "deleted, but kafka-topics --list 20s later: $(tool_why "$STATE/list.out" 0)"
            return
        fi
        sleep 1
    done
}

case "$PHASE" in
    all) phase_produce; phase_verify; phase_restart_verify; phase_cleanup ;;
    produce) phase_produce ;;
    verify) phase_verify ;;
    restart-verify) phase_restart_verify ;;
    cleanup) phase_cleanup ;;
esac
exit "$FAILED"
