#!/usr/bin/env bash
# Runs the cluster scenario against the three nodes of scripts/start-cluster.sh with real
# clients (confluent-kafka, installed into compat-tests/.venv if missing) and prints PASS or
# FAIL per step; the exit code is non-zero if any step failed.
# Usage: scripts/start-cluster.sh && scripts/test-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/python-venv.sh
exec timeout 600 "$VENV_PYTHON" scripts/cluster_scenario.py
