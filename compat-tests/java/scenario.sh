#!/usr/bin/env bash
# Client compatibility scenarios for the Java client (org.apache.kafka:kafka-clients 4.1.1).
#
# Usage: compat-tests/java/scenario.sh BOOTSTRAP [all|produce|verify|cleanup] [STATE_DIR]
#        compat-tests/java/scenario.sh --groups BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
#        compat-tests/java/scenario.sh --txn BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
#        compat-tests/java/scenario.sh --build      (build only; run.sh does this up front)
#
# basic (src/main/java/compat/JavaScenario.java):
#   produce  AdminClient: create the topics, add partitions, alter and describe configs;
#            default producers (idempotent, acks=all): timestamped batches, keyed records with
#            headers in every codec, a record near max.message.bytes, one above it
#            (RecordTooLargeException) and one after it
#   verify   metadata, configs, every record (key, value, headers, timestamp), per-partition
#            order, offsetsForTimes (run before and after the broker restart)
#   cleanup  delete the topics
# --groups (src/main/java/compat/GroupsScenario.java, the checks of python/scenario_groups.py):
#   produce         a 6-partition topic with 20 records per partition
#   verify          three consumers share it 2/2/2, read everything once, commit; one leaves,
#                   the other two take over 3/3 and resume from the commits; list, describe,
#                   DeleteGroups refused while it has members; more records after the commit
#   restart-verify  the commits survived the restart; a new member reads only the newer
#                   records, commits, closes
#   cleanup         committed offsets, DeleteGroups, DeleteTopics
# --txn (src/main/java/compat/TxnScenario.java, the checks of python/scenario_txn.py and more):
#   produce         commit / abort / an open transaction (last stable offset; describeTransactions,
#                   listTransactions, describeProducers) / zombie fencing / fenceProducers / the
#                   coordinator's timeout abort / consume-transform-produce with
#                   sendOffsetsToTransaction
#   verify          read_committed, read_uncommitted, committed offsets; a transaction left open
#   restart-verify  the same; the open transaction survived the restart; a new producer with its
#                   transactional.id aborts it
#   cleanup         DeleteGroups, DeleteTopics
# all: every phase in a row (default); STATE_DIR defaults to a temporary directory.
#
# Both are built with Maven into target/compat-java.jar (+ target/lib/) when it is missing or
# older than the sources, offline (mvn -o) when the local repository already has everything.
# Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines; exits 1 if any check failed.
# Environment: JAVA (default java), MVN (default mvn), JAVA_LOG_LEVEL (client log level on
# stderr, default warn).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"
JAR="$HERE/target/compat-java.jar"

needs_build() {
    [[ -f "$JAR" && -d "$HERE/target/lib" ]] || return 0
    [[ -n "$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -type f 2>/dev/null | head -n 1)" ]]
}

build() {
    needs_build || return 0
    command -v "$MVN" >/dev/null || { echo "mvn not found (apt-get install -y maven)" >&2; return 1; }
    local log="$HERE/target/build.log"
    mkdir -p "$HERE/target"
    # offline first: after the first build the local repository has every plugin and jar
    if ! timeout 300 "$MVN" -B -q -o -Dstyle.color=never -f "$HERE/pom.xml" package > "$log" 2>&1; then
        echo "compat-tests/java: offline build failed, resolving from Maven Central" >&2
        if ! timeout 600 "$MVN" -B -q -Dstyle.color=never -f "$HERE/pom.xml" package >> "$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
    fi
    touch "$JAR"
}

if [[ "${1:-}" == "--build" ]]; then
    build
    exit $?
fi

MAIN=compat.JavaScenario
PHASES="all|produce|verify|cleanup"
if [[ "${1:-}" == "--groups" ]]; then
    MAIN=compat.GroupsScenario
    PHASES="all|produce|verify|restart-verify|cleanup"
    shift
elif [[ "${1:-}" == "--txn" ]]; then
    MAIN=compat.TxnScenario
    PHASES="all|produce|verify|restart-verify|cleanup"
    shift
fi
[[ $# -ge 1 ]] || { sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
PHASE="${2:-all}"
[[ "|$PHASES|" == *"|$PHASE|"* ]] || { echo "bad phase: $PHASE" >&2; exit 2; }
if [[ "$PHASE" != all && -z "${3:-}" ]]; then echo "STATE_DIR is required for phase $PHASE" >&2; exit 2; fi

if ! build; then
    echo "FAIL java_build: mvn package failed (see $HERE/target/build.log)"
    exit 1
fi

# a small heap and a fast-starting JIT: the scenario is short-lived
exec "$JAVA" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${JAVA_LOG_LEVEL:-warn}" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$JAR" "$MAIN" "$@"
