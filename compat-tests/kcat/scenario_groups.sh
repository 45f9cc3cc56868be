#!/usr/bin/env bash
# Consumer-group compatibility scenario for kcat (librdkafka's high-level consumer, -G).
#
# Usage: compat-tests/kcat/scenario_groups.sh BOOTSTRAP [all|produce|verify|restart-verify|cleanup] [STATE_DIR]
#
#   produce         create a 6-partition topic (kcat has no admin API: the confluent-kafka
#                   admin client does it) and produce 600 keyed records with kcat -P
#   verify          kcat -G GROUP -X auto.offset.reset=earliest -J -e TOPIC reads every record
#                   exactly once and commits on exit; then 120 more records are produced
#   restart-verify  (run.sh restarts the broker before it) the same command prints exactly
#                   the 120 new records; run once more, it prints nothing
#   cleanup         delete the topic (admin client), check kcat -L no longer lists it
#   all             every phase in a row, without a restart (the default)
#
# Prints `PASS name` / `FAIL name: why` lines; exits 1 if any check failed.
# Environment: KCAT (default kcat), PYTHON (python with confluent-kafka; default
# compat-tests/.venv/bin/python), CHECK_PYTHON (stdlib python for the checks; default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT="$(cd "$HERE/.." && pwd)"
KCAT="${KCAT:-kcat}"
PYTHON="${PYTHON:-$COMPAT/.venv/bin/python}"
CHECK_PYTHON="${CHECK_PYTHON:-python3}"
PARTITIONS=6
FIRST=600
MORE=120

[[ $# -ge 1 ]] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BOOTSTRAP="$1"
PHASE="${2:-all}"
STATE="${3:-}"
case "$PHASE" in all|produce|verify|restart-verify|cleanup) ;; *) echo "bad phase: $PHASE" >&2; exit 2 ;; esac
if [[ -z "$STATE" ]]; then
    [[ "$PHASE" == all ]] || { echo "STATE_DIR is required for phase $PHASE" >&2; exit 2; }
    STATE="$(mktemp -d "${TMPDIR:-/tmp}/compat-kcat-groups.XXXXXX")"
    trap 'rm -rf "$STATE"' EXIT
fi
mkdir -p "$STATE"
command -v "$KCAT" >/dev/null || { echo "FAIL kcat_installed: $KCAT not found"; exit 1; }

FAILED=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $(echo "$2" | tr '\n' ' ' | sed 's/  */ /g; s/ $//')"; FAILED=1; }
gchecks() { "$CHECK_PYTHON" "$HERE/groups_checks.py" "$@"; }

# kcat with a hard time limit
kc() { timeout 60 "$KCAT" -b "$BOOTSTRAP" -X client.id=compat-kcat-groups -m 10 "$@"; }

# wait (up to $1 s) until kcat -L shows the topic with every partition led; prints why not
wait_topic() {
    local deadline=$((SECONDS + $1)) md="$STATE/md.json" why="no metadata"
    while (( SECONDS < deadline )); do
        if kc -L -J > "$md" 2> "$md.err" && [[ -s "$md" ]]; then
            why="$(gchecks ready "$TOPIC" "$PARTITIONS" "$md")" && return 0
        else
            why="kcat -L: $(tail -n 1 "$md.err")"
        fi
        sleep 0.5
    done
    echo "$why"
    return 1
}

# the group consumer: reads from the committed offsets (earliest without them) to the end of
# every assigned partition, then exits and commits. Output goes to $STATE/$1.{out,err}
group_consume() {
    local rc=0
    kc -G "$GROUP" -X auto.offset.reset=earliest -J -e "$TOPIC" \
        > "$STATE/$1.out" 2> "$STATE/$1.err" || rc=$?
    echo "$rc"
}

produce_batch() {  # produce_batch CHECK BATCH COUNT
    gchecks gen "$STATE" "$2" "$3"
    local rc=0
    kc -P -t "$TOPIC" -K : -X acks=all -X linger.ms=5 < "$STATE/input-$2.txt" \
        > "$STATE/produce-$2.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        pass "$1"
    else
        fail "$1" "kcat -P exited $rc: $(grep -v '^$' "$STATE/produce-$2.out" | sort | uniq -c | head -n 3)"
    fi
}

phase_produce() {
    local suffix
    suffix="$(date +%s)-$RANDOM"
    TOPIC="compat-kcat-groups-$suffix"
    GROUP="compat-kcat-group-$suffix"
    echo "$TOPIC" > "$STATE/topic"
    echo "$GROUP" > "$STATE/group"
    rm -f "$STATE/created"
    echo "# topic $TOPIC group $GROUP"
    local out why
    if ! out="$("$PYTHON" "$COMPAT/python/topic_admin.py" create "$BOOTSTRAP" "$TOPIC" \
                --partitions "$PARTITIONS" 2> "$STATE/admin-create.err")"; then
        fail group_create_topic "admin client (confluent-kafka): $out"
        return
    fi
    touch "$STATE/created"
    if why="$(wait_topic 20)"; then
        pass group_create_topic
    else
        fail group_create_topic "20s after CreateTopics: $why"
        return
    fi
    produce_batch group_produce first "$FIRST"
}

load_state() {
    [[ -f "$STATE/topic" && -f "$STATE/created" ]] || return 1
    TOPIC="$(cat "$STATE/topic")"
    GROUP="$(cat "$STATE/group")"
}

phase_verify() {
    load_state || { fail group_consume "topic was not created in the produce phase"; return; }
    local why rc
    if ! why="$(wait_topic 30)"; then
        fail group_consume "topic not ready: $why"
        return
    fi
    rc="$(group_consume consume)"
    gchecks consumed group_consume "$STATE" "$TOPIC" "$STATE/consume.out" "$STATE/consume.err" \
        "$rc" first "" || FAILED=1
    produce_batch group_produce_more restart "$MORE"
}

phase_restart_verify() {
    load_state || { fail group_resume_after_restart "topic was not created in the produce phase"; return; }
    [[ -f "$STATE/input-restart.txt" ]] || { fail group_resume_after_restart "the verify phase produced no new records"; return; }
    local why rc
    if ! why="$(wait_topic 30)"; then
        fail group_resume_after_restart "topic not back after the restart: $why"
        return
    fi
    rc="$(group_consume resume)"
    gchecks consumed group_resume_after_restart "$STATE" "$TOPIC" "$STATE/resume.out" \
        "$STATE/resume.err" "$rc" restart first || FAILED=1
    rc="$(group_consume again)"
    gchecks consumed group_resume_again "$STATE" "$TOPIC" "$STATE/again.out" \
        "$STATE/again.err" "$rc" "" first,restart || FAILED=1
}

phase_cleanup() {
    load_state || { fail group_delete_topic "topic was not created in the produce phase"; return; }
    local out md="$STATE/md-cleanup.json"
    if ! out="$("$PYTHON" "$COMPAT/python/topic_admin.py" delete "$BOOTSTRAP" "$TOPIC" 2> "$STATE/admin-delete.err")"; then
        fail group_delete_topic "admin client (confluent-kafka): $out"
        return
    fi
    local deadline=$((SECONDS + 20))
    while (( SECONDS < deadline )); do
        if kc -L -J > "$md" 2> "$md.err" && [[ -s "$md" ]] \
                && ! grep -q "\"topic\":\"$TOPIC\"" "$md"; then
            pass group_delete_topic
            return
        fi
        sleep 0.5
    done
    fail group_delete_topic "deleted, but kcat -L still lists $TOPIC 20s later"
}

case "$PHASE" in
    all) phase_produce; phase_verify; phase_restart_verify; phase_cleanup ;;
    produce) phase_produce ;;
    verify) phase_verify ;;
    restart-verify) phase_restart_verify ;;
    cleanup) phase_cleanup ;;
esac
exit "$FAILED"
