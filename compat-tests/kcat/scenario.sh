#!/usr/bin/env bash
# Client compatibility scenario for kcat (librdkafka) against a Kafka broker.
#
# Usage: compat-tests/kcat/scenario.sh BOOTSTRAP [all|produce|verify|cleanup] [STATE_DIR]
#
#   produce  create a 3-partition topic with max.message.bytes=10000 (kcat has no admin API:
#            the confluent-kafka admin client does it), produce keyed records with headers
#            with every codec (kcat -P -K: -z CODEC -H ...), and one record larger than
#            max.message.bytes (must fail with "Message size too large")
#   verify   kcat -L metadata; kcat -C from the beginning and compare keys, values, headers,
#            per-partition order and timestamps; kcat -Q offsets by timestamp
#   cleanup  delete the topic (admin client), check kcat -L no longer lists it
#   all      the three in a row (default); STATE_DIR defaults to a temporary directory
#
# Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines; exits 1 if any check failed.
# Environment: KCAT (default kcat), PYTHON (python with confluent-kafka; default
# compat-tests/.venv/bin/python), CHECK_PYTHON (stdlib python for the checks; default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT="$(cd "$HERE/.." && pwd)"
KCAT="${KCAT:-kcat}"
PYTHON="${PYTHON:-$COMPAT/.venv/bin/python}"
CHECK_PYTHON="${CHECK_PYTHON:-python3}"
CODECS=(none gzip snappy lz4 zstd)
MAX_MESSAGE_BYTES=10000

[[ $# -ge 1 ]] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BOOTSTRAP="$1"
PHASE="${2:-all}"
STATE="${3:-}"
case "$PHASE" in all|produce|verify|cleanup) ;; *) echo "bad phase: $PHASE" >&2; exit 2 ;; esac
if [[ -z "$STATE" ]]; then
    [[ "$PHASE" == all ]] || { echo "STATE_DIR is required for phase $PHASE" >&2; exit 2; }
    STATE="$(mktemp -d "${TMPDIR:-/tmp}/compat-kcat.XXXXXX")"
    trap 'rm -rf "$STATE"' EXIT
fi
mkdir -p "$STATE"
command -v "$KCAT" >/dev/null || { echo "FAIL kcat_installed: $KCAT not found"; exit 1; }

FAILED=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $(echo "$2" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')"; FAILED=1; }
skip() { echo "SKIP $1: $2"; }
now_ms() { date +%s%3N; }
checks() { "$CHECK_PYTHON" "$HERE/checks.py" "$@" || FAILED=1; }
# the last librdkafka log line of an admin run, e.g. "ApiVersionRequest failed: ..."
admin_log() {
    local last
    last="$( { grep -E '^%[0-9]\|[0-9.]+\|FAIL\|' "$1" || grep -E '^%[0-9]\|' "$1"; } | tail -n 1 | sed -E 's/^%[0-9]\|[0-9.]+\|//' || true)"
    if [[ -n "$last" ]]; then echo " [librdkafka log: $last]"; fi
}

# kcat with a hard time limit; common librdkafka settings
kc() { timeout 60 "$KCAT" -b "$BOOTSTRAP" -X client.id=compat-kcat -m 10 "$@"; }

# kcat -L -J into $1; retried while the broker is (re)starting. Returns non-zero on failure.
metadata_json() {
    local out="$1"
    for _ in $(seq 1 20); do
        if kc -L -J > "$out" 2> "$out.err" && [[ -s "$out" ]]; then return 0; fi
        sleep 0.5
    done
    return 1
}

# wait (up to $2 s) until kcat -L shows the topic with all partitions led
wait_topic() {
    local deadline=$((SECONDS + $2)) md="$STATE/md-wait.json"
    while (( SECONDS < deadline )); do
        if metadata_json "$md" && "$CHECK_PYTHON" "$HERE/checks.py" metadata "$1" "$STATE" "$md" >/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

phase_produce() {
    local topic
    topic="compat-kcat-$(date +%s)-$RANDOM"
    echo "$topic" > "$STATE/topic"
    rm -f "$STATE/expected.jsonl" "$STATE/windows.txt" "$STATE/created"
    echo "# topic $topic"

    # -- create (kcat cannot: confluent-kafka's admin client does it), then kcat's view of it
    local out
    if ! out="$("$PYTHON" "$COMPAT/python/topic_admin.py" create "$BOOTSTRAP" "$topic" \
                --partitions 3 --config "max.message.bytes=$MAX_MESSAGE_BYTES" 2> "$STATE/admin-create.err")"; then
        fail create_topic "admin client (confluent-kafka): $out$(admin_log "$STATE/admin-create.err")"
        return
    fi
    touch "$STATE/created"
    if wait_topic create_topic 20; then
        pass create_topic
    else
        local md="$STATE/md-create.json"
        if metadata_json "$md"; then
            checks metadata create_topic "$STATE" "$md"
        else
            fail create_topic "kcat -L: $(tail -n 3 "$md.err")"
        fi
    fi

    skip produce_timestamps "kcat -P cannot set record timestamps (timestamps are checked against the produce time)"

    # -- keyed records with headers, one kcat run per codec
    local codec zopt start end
    for codec in "${CODECS[@]}"; do
        "$CHECK_PYTHON" "$HERE/checks.py" gen "$STATE" "$codec"
        zopt=(-z "$codec")
        start="$(now_ms)"
        # fed slowly (2 ms every 4 lines) with a 50 ms linger: each batch holds records
        # with several timestamps, which the offsets-by-timestamp lookups need
        if "$CHECK_PYTHON" "$HERE/checks.py" feed "$STATE/input-$codec.txt" \
            | kc -P -t "$topic" -K : -Z "${zopt[@]}" \
                -H "codec=$codec" -H client=kcat -H empty= \
                -X linger.ms=50 -X batch.size=8000 -X acks=all \
                -X max.in.flight.requests.per.connection=1 \
                > "$STATE/produce-$codec.out" 2>&1; then
            pass "produce_$codec"
        else
            fail "produce_$codec" "kcat -P -z $codec exited $?: $(grep -v '^$' "$STATE/produce-$codec.out" | sort | uniq -c | head -n 3)"
        fi
        end="$(now_ms)"
        echo "$codec $start $end" >> "$STATE/windows.txt"
        sleep 0.05   # next codec gets later timestamps
    done

    # -- one record over the topic's max.message.bytes
    local big="$STATE/too-large.txt" rc=0
    { printf 'too-large:'; head -c $((2 * MAX_MESSAGE_BYTES)) /dev/zero | tr '\0' 'x'; echo; } > "$big"
    kc -P -t "$topic" -p 0 -K : -X linger.ms=0 -X message.timeout.ms=15000 \
        -l "$big" > "$STATE/too-large.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] && grep -q "Message size too large" "$STATE/too-large.out"; then
        pass message_too_large
    elif [[ $rc -eq 0 ]]; then
        fail message_too_large "a $((2 * MAX_MESSAGE_BYTES))-byte record was accepted (topic max.message.bytes=$MAX_MESSAGE_BYTES)"
    else
        fail message_too_large "expected 'Broker: Message size too large', kcat said: $(head -n 3 "$STATE/too-large.out")"
    fi
}

phase_verify() {
    [[ -f "$STATE/topic" && -f "$STATE/created" ]] || { fail metadata "topic was not created in the produce phase"; return; }
    local topic md
    topic="$(cat "$STATE/topic")"
    md="$STATE/md-verify.json"

    # -- metadata (waits for the broker to be back after a restart)
    if wait_topic metadata 30; then
        pass metadata
    elif metadata_json "$md"; then
        checks metadata metadata "$STATE" "$md"
    else
        fail metadata "kcat -L: $(tail -n 3 "$md.err")"
    fi

    skip content_timestamps "kcat -P cannot set record timestamps (no such records)"

    # -- consume everything from offset 0 and compare
    local rc=0
    kc -C -t "$topic" -o beginning -e -J -Z -X fetch.wait.max.ms=200 \
        > "$STATE/consumed.jsonl" 2> "$STATE/consume.err" || rc=$?
    if [[ $rc -ne 0 ]]; then
        echo "% kcat -C exited $rc" >> "$STATE/consume.err"
    fi
    local queries
    queries="$("$CHECK_PYTHON" "$HERE/checks.py" consume "$STATE" "$STATE/consumed.jsonl" "$STATE/consume.err")" || FAILED=1
    grep -v '^QUERY ' <<< "$queries" || true

    # -- offsets by timestamp: kcat -Q, one timestamp per partition per run
    : > "$STATE/answers.txt"
    local line args t
    while read -r line; do
        [[ "$line" == QUERY* ]] || continue
        args=()
        for t in ${line#QUERY }; do args+=(-t "$t"); done
        if ! kc -Q -J "${args[@]}" >> "$STATE/answers.txt" 2> "$STATE/query.err"; then
            { echo; tr '\n' ' ' < "$STATE/query.err"; } >> "$STATE/answers.txt"
        fi
        echo >> "$STATE/answers.txt"
    done <<< "$queries"
    checks offsets "$STATE" "$STATE/answers.txt"
}

phase_cleanup() {
    [[ -f "$STATE/topic" && -f "$STATE/created" ]] || { fail delete_topic "topic was not created in the produce phase"; return; }
    local topic out md="$STATE/md-cleanup.json"
    topic="$(cat "$STATE/topic")"
    if ! out="$("$PYTHON" "$COMPAT/python/topic_admin.py" delete "$BOOTSTRAP" "$topic" 2> "$STATE/admin-delete.err")"; then
        fail delete_topic "admin client (confluent-kafka): $out$(admin_log "$STATE/admin-delete.err")"
        return
    fi
    local deadline=$((SECONDS + 20))
    while (( SECONDS < deadline )); do
        if metadata_json "$md" && "$CHECK_PYTHON" "$HERE/checks.py" gone "$STATE" "$md"; then
            pass delete_topic
            return
        fi
        sleep 0.5
    done
    fail delete_topic "deleted, but kcat -L still lists $topic 20s later"
}

case "$PHASE" in
    all) phase_produce; phase_verify; phase_cleanup ;;
    produce) phase_produce ;;
    verify) phase_verify ;;
    cleanup) phase_cleanup ;;
esac
exit "$FAILED"
