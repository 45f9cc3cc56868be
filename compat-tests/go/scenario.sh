#!/usr/bin/env bash
# Client compatibility scenario for the Go clients (franz-go, IBM/sarama, segmentio/kafka-go).
#
# Usage: compat-tests/go/scenario.sh CLIENT BOOTSTRAP [all|produce|verify|cleanup] [STATE_DIR]
#        compat-tests/go/scenario.sh build     (only build; run.sh does it before the phases)
#   CLIENT  franz-go | sarama | kafka-go
#
# Builds compat-tests/go (one Go module, versions pinned in go.mod/go.sum) into
# compat-tests/go/bin/compat once, and again only when a source file changes, then runs
#   bin/compat -client CLIENT -bootstrap BOOTSTRAP -phase PHASE -state STATE_DIR
# Prints `PASS name` / `FAIL name: why` / `SKIP name: why` lines; exits 1 if a check failed.
# Environment: GO (default go), GO_BUILD_TIMEOUT (seconds, default 600).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-go}"
BIN="$HERE/bin/compat"
STAMP="$HERE/bin/.sources.sha256"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

sources_sum() {
    (cd "$HERE" && cat go.mod go.sum $(ls ./*.go | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
}

build() {  # build [PHASE]: under a lock, so that concurrent callers build once
    local phase="${1:-build}"
    mkdir -p "$HERE/bin"
    exec 9> "$HERE/bin/.build.lock"
    flock -w 900 9 || { echo "FAIL ${phase}_phase: could not take the build lock $HERE/bin/.build.lock"; exit 1; }
    local want
    want="$(sources_sum)"
    if [[ -x "$BIN" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]; then
        exec 9>&-
        return 0
    fi
    command -v "$GO" >/dev/null || { echo "FAIL ${phase}_phase: go toolchain not found ($GO)"; exit 1; }
    echo "go-scenario: building $BIN" >&2
    local log="$HERE/bin/build.log"
    if ! (cd "$HERE" && timeout "${GO_BUILD_TIMEOUT:-600}" "$GO" build -mod=readonly -trimpath -o "$BIN.tmp" .) > "$log" 2>&1; then
        echo "FAIL ${phase}_phase: go build failed: $(grep -v '^#' "$log" | head -n 3 | tr '\n' ' ')"
        exit 1
    fi
    mv "$BIN.tmp" "$BIN"
    echo "$want" > "$STAMP"
    exec 9>&-
}

[[ $# -ge 1 ]] || usage
if [[ "$1" == build ]]; then
    build
    exit 0
fi
[[ $# -ge 2 ]] || usage
CLIENT="$1"
BOOTSTRAP="$2"
PHASE="${3:-all}"
STATE="${4:-}"
case "$CLIENT" in franz-go|sarama|kafka-go) ;; *) echo "unknown client: $CLIENT" >&2; exit 2 ;; esac
case "$PHASE" in all|produce|verify|cleanup) ;; *) echo "bad phase: $PHASE" >&2; exit 2 ;; esac
if [[ -z "$STATE" && "$PHASE" != all ]]; then
    echo "STATE_DIR is required for phase $PHASE" >&2
    exit 2
fi

build "$PHASE"
args=(-client "$CLIENT" -bootstrap "$BOOTSTRAP" -phase "$PHASE")
[[ -n "$STATE" ]] && args+=(-state "$STATE")
exec "$BIN" "${args[@]}"
