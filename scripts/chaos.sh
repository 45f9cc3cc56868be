#!/usr/bin/env bash
# Chaos test of replication: a private three-node cluster (ports 19092-19094, Raft
# 18001-18003), a topic with replication factor 3 and min.insync.replicas 2, an acks=all
# idempotent producer, and rounds of kill -9 of a partition leader; then checks that every
# acknowledged record is read back exactly once, in order (see scripts/chaos.py).
# Installs confluent-kafka into compat-tests/.venv if missing.
# Usage: scripts/chaos.sh [--rounds 12] [--partitions P] [--rate R] [--no-build] [--keep] ...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/python-venv.sh
exec "$VENV_PYTHON" scripts/chaos.py "$@"
