#!/usr/bin/env bash
# Log compaction figures (scripts/bench/compaction.py): bytes on disk of a compacted topic
# before and after the cleaner (1M updates over 10k keys by default), the cleaner's
# throughput, produce throughput with the cleaner off and on, and the start-up time of a
# broker with a large __consumer_offsets before and after compaction.
# Usage: scripts/bench-compaction.sh [--no-build] [compaction.py options, e.g. --updates 200000]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--no-build" ]]; then shift; else cargo build --release; fi
VENV=target/bench/venv
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check confluent-kafka==2.16.1
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-compaction.XXXXXX")"
"$VENV/bin/python" scripts/bench/compaction.py target/release/broker "$WORK" "$@"
echo "raw figures: $WORK/compaction.json"
