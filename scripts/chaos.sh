#!/usr/bin/env bash
# Chaos test of replication: a private three-node cluster (ports 19092-19094, Raft
# 18001-18003), a topic with replication factor 3 and min.insync.replicas 2, an acks=all
# idempotent producer, and rounds of kill -9 of a partition leader; then checks that every
# acknowledged record is read back exactly once, in order (see scripts/chaos.py).
# --fault pause instead SIGSTOPs a node for --pause s (default 8, longer than the broker
# session timeout, so it is fenced) and SIGCONTs it, alternately a partition leader and the
# controller, --gap s apart (default random 2-5) without waiting for recovery, with the
# repository's cluster timings (rtt_ms 100); then requires within --settle s (default 30)
# of the last SIGCONT that every node lists all three brokers and one controller, every
# partition has a leader and writes resume, before the same read-back checks.
# Installs confluent-kafka into compat-tests/.venv if missing.
# Usage: scripts/chaos.sh [--rounds 12] [--partitions P] [--rate R] [--no-build] [--keep] ...
#        scripts/chaos.sh --fault pause [--rounds 6] [--pause 8] [--gap S] [--settle 30] [--rtt-ms 100] ...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/python-venv.sh
exec "$VENV_PYTHON" scripts/chaos.py "$@"
