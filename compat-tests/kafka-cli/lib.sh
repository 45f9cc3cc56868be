# Shared by scenario.sh and scenario_groups.sh (sourced, not run): argument parsing, PASS /
# FAIL / SKIP output, and `tool CLASS ARGS...` = one bounded run of a Kafka CLI class through
# `scripts/kafka-reference.sh run-tool` (the jars it caches in ~/.cache/kafka-broker-compat).
# The caller sets HERE and PHASES ("all|produce|...") before sourcing.
# shellcheck shell=bash disable=SC2034,SC2153
# (the variables set here are used by the scripts that source it)

COMPAT="$(cd "$HERE/.." && pwd)"
REPO="$(cd "$COMPAT/.." && pwd)"
KAFKA_REF="${KAFKA_REF:-$REPO/scripts/kafka-reference.sh}"
CHECK_PYTHON="${CHECK_PYTHON:-python3}"
TOOL_TIMEOUT="${TOOL_TIMEOUT:-60}"
# replication factor of the topics created (run.sh --cluster: 3); checks.py reads it too
REPLICATION_FACTOR="${COMPAT_REPLICATION_FACTOR:-1}"
[[ "$REPLICATION_FACTOR" =~ ^[1-9][0-9]*$ ]] || { echo "bad COMPAT_REPLICATION_FACTOR: $REPLICATION_FACTOR" >&2; exit 2; }
export COMPAT_REPLICATION_FACTOR="$REPLICATION_FACTOR"

TOPICS=org.apache.kafka.tools.TopicCommand
PRODUCER=org.apache.kafka.tools.ConsoleProducer
CONSUMER=org.apache.kafka.tools.consumer.ConsoleConsumer
GROUPS_CMD=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
CONFIGS=kafka.admin.ConfigCommand          # still in the kafka_2.13 (core) jar in 4.1
GET_OFFSETS=org.apache.kafka.tools.GetOffsetShell
PERF=org.apache.kafka.tools.ProducerPerformance
DELETE_RECORDS=org.apache.kafka.tools.DeleteRecordsCommand

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 ]] || usage
BOOTSTRAP="$1"
PHASE="${2:-all}"
STATE="${3:-}"
[[ "|$PHASES|" == *"|$PHASE|"* ]] || { echo "bad phase: $PHASE (one of $PHASES)" >&2; exit 2; }
if [[ -z "$STATE" ]]; then
    [[ "$PHASE" == all ]] || { echo "STATE_DIR is required for phase $PHASE" >&2; exit 2; }
    STATE="$(mktemp -d "${TMPDIR:-/tmp}/compat-kafka-cli.XXXXXX")"
    trap 'rm -rf "$STATE"' EXIT
fi
mkdir -p "$STATE"

FAILED=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $(echo "$2" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')"; FAILED=1; }
skip() { echo "SKIP $1: $2"; }
now_ms() { date +%s%3N; }
checks() { "$CHECK_PYTHON" "$HERE/checks.py" "$@" || FAILED=1; }
# gate: the same, but returns the failure (only where the caller tests it: set -e)
gate() { "$CHECK_PYTHON" "$HERE/checks.py" "$@" && return 0; FAILED=1; return 1; }

# Class-data sharing: the first run of each tool class dumps the classes it loaded into
# $CDS_DIR/CLASS.jsa; later runs map that archive and start in about half the CPU time (one
# JVM per step adds up on 2 cores). A stale or mismatched archive is ignored by the JVM.
# KAFKA_CLI_CDS=0 turns it off.
JDK_VERSION="$(java -version 2>&1 | sed -n '1s/.*version "\([^"]*\)".*/\1/p')"
CDS_DIR="${KAFKA_CLI_CDS_DIR:-${KAFKA_REF_CACHE:-$HOME/.cache/kafka-broker-compat}/kafka-${KAFKA_VERSION:-4.1.1}/cds-jdk-${JDK_VERSION:-unknown}}"

# tool CLASS ARGS...: one Kafka tool run, bounded; the caller redirects its output
tool() {
    local cls="$1" opts="" tmp="" rc=0
    shift
    if [[ "${KAFKA_CLI_CDS:-1}" == 1 ]] && mkdir -p "$CDS_DIR" 2>/dev/null; then
        if [[ -s "$CDS_DIR/$cls.jsa" ]]; then
            opts="-XX:SharedArchiveFile=$CDS_DIR/$cls.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"
        else
            tmp="$CDS_DIR/$cls.$$.$RANDOM.jsa"
            opts="-XX:ArchiveClassesAtExit=$tmp -Xlog:cds=off -Xlog:cds+dynamic=off"
        fi
    fi
    # the JVM announces JAVA_TOOL_OPTIONS on stderr: drop that line, keep stdout and stderr apart
    { JAVA_TOOL_OPTIONS="$opts" timeout "$TOOL_TIMEOUT" "$KAFKA_REF" run-tool "$cls" "$@" 2>&1 1>&3 3>&- \
        | sed '/^Picked up JAVA_TOOL_OPTIONS/d' >&2; } 3>&1 || rc=$?
    if [[ -n "$tmp" ]]; then
        if [[ -s "$tmp" ]]; then mv -f "$tmp" "$CDS_DIR/$cls.jsa"; else rm -f "$tmp"; fi
    fi
    return "$rc"
}

# the tool's failure in one line: its exception / ERROR line, else its last lines
tool_why() {  # tool_why FILE RC
    local line
    line="$(grep -m1 -E '(Exception|Error): |ERROR' "$1" | cut -c1-400 || true)"
    [[ -n "$line" ]] || line="$(grep -v '^\s*$' "$1" | tail -n 2 | tr '\n' ' ' | cut -c1-400 || true)"
    [[ "$2" -eq 124 ]] && line="timed out after ${TOOL_TIMEOUT}s; $line"
    echo "exit $2: $line"
}

# kafka-topics --describe until it shows N partitions with leaders (after a restart, an alter)
describe_until() {  # describe_until NAME TOPIC N SECONDS [CONFIG]
    local deadline=$((SECONDS + $4)) out="$STATE/describe-$1.out" res
    while :; do
        tool "$TOPICS" --bootstrap-server "$BOOTSTRAP" --describe --topic "$2" > "$out" 2>&1 || true
        res="$("$CHECK_PYTHON" "$HERE/checks.py" describe-topic "$1" "$2" "$3" "$out" ${5:+"$5"})" && { echo "$res"; return 0; }
        if (( SECONDS >= deadline )); then echo "$res"; FAILED=1; return 1; fi
        sleep 1
    done
}

if [[ ! -x "$KAFKA_REF" ]]; then echo "FAIL kafka_tools: $KAFKA_REF not found"; exit 1; fi
if ! "$KAFKA_REF" fetch > "$STATE/fetch.log" 2>&1; then
    echo "FAIL kafka_tools: could not get the Kafka jars: $(tail -n 2 "$STATE/fetch.log" | tr '\n' ' ')"
    exit 1
fi
