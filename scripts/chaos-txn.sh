#!/usr/bin/env bash
# Chaos test of transactions (see scripts/chaos-txn.py): a private three-node cluster (ports
# 19192-19194, Raft 18101-18103; --reference: Apache Kafka 4.1.1 on 39192-39194, controllers
# 39292-39294), topics with replication factor 3 and min.insync.replicas 2, a transactional
# producer that commits and aborts at random and sends consumer offsets in its transactions,
# and rounds of kill -9 of the transaction coordinator, a partition leader and the group
# coordinator; then a read_committed read checks that every committed transaction is there
# exactly once and in order, no aborted record is visible, and the group's offset is the last
# committed one. Prints committed_lost / aborted_read / duplicated / out_of_order / torn counts.
# Installs confluent-kafka into compat-tests/.venv if missing.
# Usage: scripts/chaos-txn.sh [--rounds 3] [--partitions P] [--abort-ratio 0.3] [--no-build] [--keep]
#        scripts/chaos-txn.sh --rounds 12          (the long run)
#        scripts/chaos-txn.sh --reference          (against Apache Kafka: checks the script itself)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/python-venv.sh
exec "$VENV_PYTHON" scripts/chaos-txn.py "$@"
