#!/usr/bin/env bash
# Fuzz the protocol crate's frame reader and request decoder with cargo-fuzz (libFuzzer).
#
# Usage:
#   scripts/fuzz.sh [seconds] [target]     default: 300 seconds, target decode_request
#                                          (targets: decode_request, decode_frame_stream, all)
#
# Runs with libFuzzer's -rss_limit_mb=2048 and -malloc_limit_mb=2048 under AddressSanitizer,
# so any allocation sized by a forged wire length is a crash. Exits non-zero when a crash,
# OOM, over-limit malloc or timeout is found; the input is saved in
# fuzz/artifacts/<target>/ and can be replayed with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -s address <target> fuzz/artifacts/<target>/<file>
# (from fuzz/). Seeds are read from fuzz/corpus/<target>/ (committed, never written);
# what the fuzzer finds goes to fuzz/target/corpus/<target>/ (kept between runs, not
# committed). Regenerate the seeds with
#   cargo test -p protocol --test seed_corpus -- --ignored write_fuzz_seed_corpus
#
# Works on the pinned stable toolchain: cargo-fuzz's nightly-only rustc flags
# (-Zsanitizer, sancov passes) are allowed through RUSTC_BOOTSTRAP=1.
#
# Environment:
#   FUZZ_SANITIZER=address|none   (default address; "none" is faster but cannot see an
#                                 allocation that is reserved and never touched)
#   FUZZ_KEEP_GOING=1             keep fuzzing after a crash (libFuzzer fork mode) and
#                                 count the crashes; still exits non-zero if any was found
#   FUZZ_ARGS="..."               extra libFuzzer arguments
set -euo pipefail

SECONDS_TO_RUN="${1:-300}"
TARGET="${2:-decode_request}"
SANITIZER="${FUZZ_SANITIZER:-address}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$REPO_DIR/fuzz"

log() { echo "fuzz.sh: $*" >&2; }

[[ "$SECONDS_TO_RUN" =~ ^[0-9]+$ ]] || { log "seconds must be a number, got '$SECONDS_TO_RUN'"; exit 2; }

if [[ "$TARGET" == all ]]; then
    status=0
    for t in decode_request decode_frame_stream; do
        "$0" "$SECONDS_TO_RUN" "$t" || status=1
    done
    exit "$status"
fi
[[ -f "$FUZZ_DIR/fuzz_targets/$TARGET.rs" ]] || { log "no fuzz target '$TARGET'"; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd "$FUZZ_DIR"

SEEDS="$FUZZ_DIR/corpus/$TARGET"
WORK="$FUZZ_DIR/target/corpus/$TARGET"
ARTIFACTS="$FUZZ_DIR/artifacts/$TARGET"
LOG="$FUZZ_DIR/target/fuzz-$TARGET.log"
mkdir -p "$SEEDS" "$WORK" "$ARTIFACTS"

list_artifacts() { find "$ARTIFACTS" -maxdepth 1 -type f -printf '%f\n' | sort; }
before="$(list_artifacts)"

args=(
    "-max_total_time=$SECONDS_TO_RUN"
    -rss_limit_mb=2048
    -malloc_limit_mb=2048
    -timeout=30
    -print_final_stats=1
)
if [[ "${FUZZ_KEEP_GOING:-0}" == 1 ]]; then
    args+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
fi
# shellcheck disable=SC2206
args+=(${FUZZ_ARGS:-})

log "building $TARGET (sanitizer: $SANITIZER)"
cargo fuzz build --sanitizer "$SANITIZER" "$TARGET"

log "running $TARGET for ${SECONDS_TO_RUN}s; log in $LOG"
set +e
cargo fuzz run --sanitizer "$SANITIZER" "$TARGET" "$WORK" "$SEEDS" -- "${args[@]}" 2>&1 | tee "$LOG" |
    grep --line-buffered -E '^(#[0-9]+ +(INITED|DONE|pulse)|==[0-9]+==|SUMMARY|.*(panicked at|out-of-memory|malloc\(|deadly signal|Test unit written|crash-|oom-|timeout-)|stat::|INFO: fuzzed for)'
rc="${PIPESTATUS[0]}"
set -e

new_artifacts="$(comm -13 <(echo "$before") <(list_artifacts) | sed '/^$/d')"
new="$(echo -n "$new_artifacts" | grep -c . || true)"
execs="$( (grep -E '^stat::number_of_executed_units' "$LOG" || true) | awk '{s += $2} END {print s + 0}')"
if [[ "$execs" == 0 ]]; then
    # Fork mode prints no final stats: take the last status line.
    execs="$( (grep -oE '^#[0-9]+' "$LOG" || true) | tail -n 1 | tr -d '#')"
fi
crashes="$( (grep -oE 'oom/timeout/crash: [0-9/]+' "$LOG" || true) | tail -n 1)"
log "target $TARGET: ${execs:-?} executions, corpus $(find "$WORK" -type f | wc -l) files" \
    "($(du -sh --apparent-size "$WORK" | cut -f1)), $new new artifact(s) in $ARTIFACTS${crashes:+ ($crashes)}, exit $rc"
if (( new > 0 )); then
    sed 's/^/  /' <<< "$new_artifacts" >&2
fi
if (( rc != 0 || new > 0 )); then
    log "FAILED: a crash was found"
    exit 1
fi
log "no crash"
