#!/usr/bin/env bash
# Client compatibility suite: real Kafka clients against this broker (and, with --reference,
# against Apache Kafka side by side). Writes compat-tests/MATRIX.md.
#
# Usage: compat-tests/run.sh [--reference | --reference-only] [--no-build] [--clients LIST]
#   --reference       also run every scenario against Apache Kafka (scripts/kafka-reference.sh)
#   --reference-only  only against Apache Kafka (checks the scenarios themselves; no cargo build)
#   --no-build        use the existing target/release/broker
#   --clients LIST    comma-separated subset of: kcat,confluent (default: all)
#
# For each broker: every client runs `produce`, then `verify`; the broker is restarted
# (SIGTERM, start again over the same data dir); every client runs `verify` again, then
# `cleanup`. Logs go to compat-tests/.logs/. Exits non-zero if any check failed against
# this broker (or, with --reference-only, against Apache Kafka).
#
# Environment: BROKER_BIN (default target/release/broker), KAFKA_VERSION (reference version),
# PHASE_TIMEOUT (seconds per scenario phase, default 180).
set -euo pipefail

COMPAT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$COMPAT/.." && pwd)"
LOGS="$COMPAT/.logs"
VENV="$COMPAT/.venv"
REF_SCRIPT="$REPO/scripts/kafka-reference.sh"
BROKER_BIN="${BROKER_BIN:-$REPO/target/release/broker}"
PHASE_TIMEOUT="${PHASE_TIMEOUT:-180}"
ALL_CLIENTS=(kcat confluent)

RUN_OURS=1
RUN_REF=0
BUILD=1
CLIENTS=("${ALL_CLIENTS[@]}")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reference) RUN_REF=1 ;;
        --reference-only) RUN_REF=1; RUN_OURS=0; BUILD=0 ;;
        --no-build) BUILD=0 ;;
        --clients) shift; IFS=, read -r -a CLIENTS <<< "${1:-}" ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
for c in "${CLIENTS[@]}"; do
    [[ " ${ALL_CLIENTS[*]} " == *" $c "* ]] || { echo "unknown client: $c" >&2; exit 2; }
done

mkdir -p "$LOGS"
RUN_TMP="$(mktemp -d "${TMPDIR:-/tmp}/compat-run.XXXXXX")"
RESULTS="$LOGS/results.tsv"
rm -rf "$LOGS/state"
EVENTS="$RUN_TMP/events.jsonl"
: > "$RESULTS"
: > "$EVENTS"

say() { echo "== $*" >&2; }

# ------------------------------------------------------------------------ cleanup on exit

OURS_PID=""
OURS_PORT=""
OURS_CFG=""
OURS_DATA=""
REF_PORT=""
cleanup() {
    local rc=$?
    if [[ -n "$OURS_PID" ]] && kill -0 "$OURS_PID" 2>/dev/null; then
        kill -TERM -- "-$OURS_PID" 2>/dev/null || kill -TERM "$OURS_PID" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$OURS_PID" 2>/dev/null || kill -KILL "$OURS_PID" 2>/dev/null || true
    fi
    if [[ -n "$REF_PORT" ]]; then
        "$REF_SCRIPT" stop "$REF_PORT" >/dev/null 2>&1 || true
    fi
    [[ -n "$OURS_DATA" ]] && rm -rf "$OURS_DATA"
    rm -rf "$RUN_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

event() {  # event TARGET TEXT
    "$PYTHON3" -c 'import json,sys; print(json.dumps({"target": sys.argv[1], "text": sys.argv[2]}))' \
        "$1" "$2" >> "$EVENTS"
    say "$1: $2"
}

# ------------------------------------------------------------------------ installs

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 \
        || { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; }
}

PYTHON3="$(command -v python3 || true)"
[[ -n "$PYTHON3" ]] || { apt_install python3 python3-venv; PYTHON3="$(command -v python3)"; }

if [[ " ${CLIENTS[*]} " == *" kcat "* ]] && ! command -v kcat >/dev/null; then
    say "installing kcat (apt)"
    apt_install kcat
fi

# the venv serves the confluent scenario and the kcat scenario's topic admin
REQ="$COMPAT/python/requirements.txt"
REQ_SUM="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_SUM" ]]; then
    say "creating $VENV and installing $(tr '\n' ' ' < "$REQ")"
    "$PYTHON3" -m venv "$VENV" || { apt_install python3-venv; "$PYTHON3" -m venv --clear "$VENV"; }
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
    echo "$REQ_SUM" > "$VENV/.requirements.sha256"
fi

if [[ $RUN_REF -eq 1 ]]; then
    command -v java >/dev/null || { say "installing java (apt)"; apt_install openjdk-17-jre-headless; }
    command -v mvn >/dev/null || { say "installing maven (apt)"; apt_install maven; }
    "$REF_SCRIPT" fetch >/dev/null
fi

# ------------------------------------------------------------------------ helpers

free_port_pair() {  # a port p such that p and p+1 are both free on 127.0.0.1
    "$PYTHON3" - <<'EOF'
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

wait_port() {  # wait_port PORT SECONDS [PID]
    local deadline=$((SECONDS + $2))
    while (( SECONDS < deadline )); do
        if [[ -n "${3:-}" ]] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
}

# --- this broker
ours_launch() {
    echo "===== $(date -Is) starting $BROKER_BIN --config $OURS_CFG" >> "$LOGS/broker.log"
    # own process group (setsid): stopping it also reaches anything the broker started
    setsid "$BROKER_BIN" --config "$OURS_CFG" >> "$LOGS/broker.log" 2>&1 < /dev/null &
    OURS_PID=$!
    if ! wait_port "$OURS_PORT" 30 "$OURS_PID"; then
        local why="did not listen on 127.0.0.1:$OURS_PORT within 30s"
        if ! kill -0 "$OURS_PID" 2>/dev/null; then
            local rc=0
            wait "$OURS_PID" || rc=$?
            why="exited with status $rc during startup: $(grep -v '^=====' "$LOGS/broker.log" | tail -n 3 | tr '\n' ' ' || true)"
        else
            kill -KILL -- "-$OURS_PID" 2>/dev/null || kill -KILL "$OURS_PID" 2>/dev/null || true
        fi
        OURS_PID=""
        event ours "broker $why"
        return 1
    fi
}

ours_start() {
    OURS_PORT="$(free_port_pair)"
    OURS_DATA="$(mktemp -d "${TMPDIR:-/tmp}/compat-broker-data.XXXXXX")"
    OURS_CFG="$RUN_TMP/broker.json"
    cat > "$OURS_CFG" <<EOF
{"data_dir": "$OURS_DATA", "server": {"host": "127.0.0.1", "port": "$OURS_PORT"}}
EOF
    cp "$OURS_CFG" "$LOGS/broker.json"
    : > "$LOGS/broker.log"
    ours_launch
}

ours_stop() {  # SIGTERM; records it when the broker needs SIGKILL or exits non-zero
    [[ -n "$OURS_PID" ]] || return 0
    local pid="$OURS_PID" i rc=0
    OURS_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 80); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        event ours "broker did not exit within 20s of SIGTERM; killed with SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    kill -KILL -- "-$pid" 2>/dev/null || true   # leftovers of the process group, if any
    if [[ $rc -ne 0 && $rc -ne 143 ]]; then
        event ours "broker exited with status $rc after SIGTERM"
    fi
}

ours_alive() { [[ -n "$OURS_PID" ]] && kill -0 "$OURS_PID" 2>/dev/null; }

# --- Apache Kafka
ref_start() {
    REF_PORT="$(free_port_pair)"
    KAFKA_REF_LOG="$LOGS/kafka-reference.log" "$REF_SCRIPT" start "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log"
}
ref_restart() { "$REF_SCRIPT" restart "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log"; }
ref_stop() { "$REF_SCRIPT" stop "$REF_PORT" >/dev/null 2>> "$LOGS/kafka-reference.script.log" || true; REF_PORT=""; }
ref_alive() { "$REF_SCRIPT" status "$REF_PORT" >/dev/null 2>&1; }

# ------------------------------------------------------------------------ scenarios

canonical_checks() {  # the checks a stage normally reports (for "not run" bookkeeping)
    case "$1" in
        produce) echo "create_topic produce_timestamps produce_none produce_gzip produce_snappy produce_lz4 produce_zstd message_too_large" ;;
        verify|restart-verify) echo "metadata consume_all content_timestamps content_none content_gzip content_snappy content_lz4 content_zstd partition_order record_timestamps offsets_for_times" ;;
        cleanup) echo "delete_topic" ;;
    esac
}

scenario_cmd() {  # scenario_cmd CLIENT BOOTSTRAP PHASE STATE_DIR
    case "$1" in
        kcat) echo "$COMPAT/kcat/scenario.sh" "$2" "$3" "$4" ;;
        confluent) echo "$VENV/bin/python" "$COMPAT/python/scenario_confluent.py" "$2" --phase "$3" --state "$4/state.json" ;;
    esac
}

FAILED_OURS=0
FAILED_REF=0

run_phase() {  # run_phase TARGET CLIENT STAGE BOOTSTRAP
    local target="$1" client="$2" stage="$3" bootstrap="$4"
    local phase="$stage"
    [[ "$stage" == restart-verify ]] && phase=verify
    local state="$LOGS/state/$target-$client"
    mkdir -p "$state"
    local out="$LOGS/$target-$client-$stage.out" err="$LOGS/$target-$client-$stage.err"
    local rc=0
    # shellcheck disable=SC2046
    timeout "$PHASE_TIMEOUT" $(scenario_cmd "$client" "$bootstrap" "$phase" "$state") > "$out" 2> "$err" || rc=$?
    sed "s/^/   [$target $client $stage] /" "$out" >&2
    local seen=" " nfail=0 line status name msg
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) status=PASS; name="${line#PASS }"; msg="" ;;
            "FAIL "*) status=FAIL; name="${line#FAIL }"; name="${name%%:*}"; msg="${line#FAIL *: }" ;;
            "SKIP "*) status=SKIP; name="${line#SKIP }"; name="${name%%:*}"; msg="${line#SKIP *: }" ;;
            *) continue ;;
        esac
        [[ $status == FAIL ]] && nfail=$((nfail + 1))
        seen+="$name "
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$client" "$stage" "$name" "$status" "$msg" >> "$RESULTS"
    done < "$out"
    if [[ $rc -ne 0 ]]; then
        local why
        if [[ $rc -eq 124 ]]; then why="phase timed out after ${PHASE_TIMEOUT}s"; else why="phase exited with status $rc"; fi
        local last
        last="$(grep -v '^\s*$' "$err" | tail -n 1 | cut -c1-300 || true)"
        [[ -n "$last" ]] && why="$why ($last)"
        local c first=1
        for c in $(canonical_checks "$stage"); do
            [[ "$seen" == *" $c "* ]] && continue
            # explain the crash once when the phase printed no failure of its own
            if [[ $nfail -eq 0 && $first -eq 1 ]]; then msg="$why"; first=0; else msg=""; fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$client" "$stage" "$c" NOTRUN "$msg" >> "$RESULTS"
        done
        if [[ $target == ours ]]; then FAILED_OURS=1; else FAILED_REF=1; fi
    fi
    if [[ $nfail -gt 0 ]]; then
        if [[ $target == ours ]]; then FAILED_OURS=1; else FAILED_REF=1; fi
    fi
}

mark_all_notrun() {  # mark_all_notrun TARGET WHY
    local client stage c first=1 msg
    for client in "${CLIENTS[@]}"; do
        for stage in produce verify restart-verify cleanup; do
            for c in $(canonical_checks "$stage"); do
                if [[ $first -eq 1 ]]; then msg="$2"; first=0; else msg=""; fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$client" "$stage" "$c" NOTRUN "$msg" >> "$RESULTS"
            done
        done
    done
}

run_target() {  # run_target ours|reference
    local target="$1" bootstrap client stage
    if [[ $target == ours ]]; then
        ours_start || { mark_all_notrun ours "broker did not start (see Notes)"; FAILED_OURS=1; return; }
        bootstrap="127.0.0.1:$OURS_PORT"
    else
        if ! ref_start; then
            event reference "Apache Kafka did not start: $(tail -n 3 "$LOGS/kafka-reference.script.log" | tr '\n' ' ')"
            mark_all_notrun reference "Apache Kafka did not start"
            FAILED_REF=1
            return
        fi
        bootstrap="127.0.0.1:$REF_PORT"
    fi
    say "$target broker on $bootstrap"
    for stage in produce verify restart-verify cleanup; do
        if [[ $stage == restart-verify ]]; then
            say "$target: restarting the broker"
            local t0=$SECONDS
            if [[ $target == ours ]]; then
                ours_stop
                ours_launch || true
            else
                ref_restart || event reference "restart failed"
            fi
            say "$target: restarted in $((SECONDS - t0))s"
        fi
        for client in "${CLIENTS[@]}"; do
            if [[ $target == ours ]] && ! ours_alive; then
                if [[ -n "$OURS_PID" ]]; then
                    local rc=0
                    wait "$OURS_PID" 2>/dev/null || rc=$?
                    event ours "broker process died (exit status $rc) before $client $stage; last log lines: $(grep -v '^=====' "$LOGS/broker.log" | tail -n 3 | tr '\n' ' ' | cut -c1-400)"
                    OURS_PID=""
                fi
                ours_launch || true
            fi
            say "$target: $client $stage"
            run_phase "$target" "$client" "$stage" "$bootstrap"
        done
    done
    if [[ $target == ours ]]; then ours_stop; else ref_stop; fi
}

# ------------------------------------------------------------------------ main

START=$SECONDS
WANT_OURS=$RUN_OURS
if [[ $RUN_OURS -eq 1 && $BUILD -eq 1 ]]; then
    say "cargo build --release (log: $LOGS/cargo-build.log)"
    if ! (cd "$REPO" && cargo build --release) > "$LOGS/cargo-build.log" 2>&1; then
        first_err="$(grep -m1 -E '^error' "$LOGS/cargo-build.log" || tail -n 1 "$LOGS/cargo-build.log" || true)"
        event ours "cargo build --release failed: $first_err"
        mark_all_notrun ours "cargo build --release failed"
        FAILED_OURS=1
        RUN_OURS=0
    fi
fi
if [[ $RUN_OURS -eq 1 ]]; then
    if [[ ! -x "$BROKER_BIN" ]]; then
        event ours "no broker binary at $BROKER_BIN"
        mark_all_notrun ours "no broker binary"
        FAILED_OURS=1
    else
        run_target ours
    fi
fi
if [[ $RUN_REF -eq 1 ]]; then
    run_target reference
fi

# ------------------------------------------------------------------------ MATRIX.md

KCAT_LABEL="$(kcat -V 2>/dev/null | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/kcat \1 (librdkafka \2)/p' | head -n1)"
CONFLUENT_LABEL="$("$VENV/bin/python" -c 'import importlib.metadata as m, confluent_kafka as c; print("confluent-kafka %s (librdkafka %s)" % (m.version("confluent-kafka"), c.libversion()[0]))' 2>/dev/null || echo confluent-kafka)"
KAFKA_VER="${KAFKA_VERSION:-4.1.1}"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || true)"
"$PYTHON3" - "$RUN_TMP/meta.json" "$RESULTS" "$EVENTS" "$COMMIT" "$KCAT_LABEL" "$CONFLUENT_LABEL" \
        "$KAFKA_VER" "${CLIENTS[*]}" <<'EOF'
import datetime, json, sys
out, results, events, commit, kcat_label, confluent_label, kafka_ver, clients = sys.argv[1:]
labels = {"kcat": (kcat_label or "kcat") + " via `compat-tests/kcat/scenario.sh`",
          "confluent": confluent_label + " via `compat-tests/python/scenario_confluent.py`"}
have = {line.split("\t")[0] for line in open(results) if line.strip()}
targets = {}
if "ours" in have:
    targets["ours"] = "`target/release/broker` built from this repository"
if "reference" in have:
    targets["reference"] = f"Apache Kafka {kafka_ver} (KRaft, single node, `scripts/kafka-reference.sh`)"
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": commit,
    "clients": {c: labels[c] for c in clients.split()},
    "targets": targets,
    "events": [json.loads(line) for line in open(events) if line.strip()],
    "scenarios": {c: {"kcat": "compat-tests/kcat/scenario.sh",
                      "confluent": "compat-tests/python/scenario_confluent.py"}[c]
                  for c in clients.split()},
}, open(out, "w"))
EOF
"$PYTHON3" "$COMPAT/render_matrix.py" "$RESULTS" "$RUN_TMP/meta.json" "$COMPAT/MATRIX.md"
say "wrote $COMPAT/MATRIX.md ($((SECONDS - START))s)"

grep -E '^(ours|reference)' "$RESULTS" | awk -F'\t' '{n[$1" "$5]++} END {for (k in n) print "   " k ": " n[k]}' | sort >&2
if [[ $WANT_OURS -eq 1 && $FAILED_OURS -ne 0 ]]; then
    say "FAILED against this broker (see compat-tests/MATRIX.md)"
    exit 1
fi
if [[ $WANT_OURS -eq 0 && $FAILED_REF -ne 0 ]]; then
    say "FAILED against Apache Kafka: the scenarios themselves are wrong or the reference is broken"
    exit 1
fi
say "all checks passed"
