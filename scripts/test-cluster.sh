#!/usr/bin/env bash
# Runs the cluster scenario against the three nodes of scripts/start-cluster.sh with real
# clients (confluent-kafka, installed into compat-tests/.venv if missing) and prints PASS or
# FAIL per step; the exit code is non-zero if any step failed.
# Usage: scripts/start-cluster.sh && scripts/test-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=compat-tests/.venv
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import confluent_kafka" 2>/dev/null \
    || "$VENV/bin/pip" install --quiet -r compat-tests/python/requirements.txt
exec timeout 600 "$VENV/bin/python" scripts/cluster_scenario.py
