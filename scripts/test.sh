#!/usr/bin/env bash
# Runs every test of the project: the format and lint gate, unit and integration tests of the workspace, the client
# compatibility suite (installs its own clients; its txn scenario: transactions with
# confluent-kafka, the Java client and kafka-transactions) on one node and on three (replication
# factor 3), Kafka Connect, Kafka Streams (at_least_once and exactly_once_v2) and Kafka's
# transactional message copier on one node and on three, the
# three-node cluster scenario, a short replication chaos run (kill -9 of
# partition leaders under acks=all load), a short pause run (SIGSTOP/SIGCONT of partition
# leaders and of the controller, long enough to be fenced), a short transactions chaos run
# (kill -9 of the transaction coordinator, a leader and the group coordinator under a
# transactional producer), and a short fuzz run of the decoder.
# Usage: scripts/test.sh            (everything)
#        FUZZ_SECONDS=300 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== format and lints (cargo fmt --check, cargo clippy --all-targets -D warnings)"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings 2>&1

echo "== cargo test (workspace)"
cargo test --workspace --release 2>&1

echo "== client compatibility suite (single node)"
bash compat-tests/run.sh

echo "== applications: Kafka Connect distributed, Kafka Streams, the transactional copier (single node)"
bash scripts/test-apps.sh --no-build

echo "== client compatibility suite (three-node cluster)"
bash compat-tests/run.sh --cluster --no-build

echo "== three-node cluster"
bash scripts/stop-cluster.sh --wipe >/dev/null 2>&1 || true
trap 'bash scripts/stop-cluster.sh --wipe >/dev/null 2>&1 || true' EXIT
bash scripts/start-cluster.sh --no-build
bash scripts/test-cluster.sh
echo "== applications: Kafka Connect distributed, Kafka Streams, the transactional copier (three-node cluster, replication factor 3)"
bash scripts/test-apps.sh --no-build --cluster
bash scripts/stop-cluster.sh --wipe

echo "== replication chaos (short: 3 leader kills; the long run is scripts/chaos.sh --rounds 12)"
bash scripts/chaos.sh --no-build --rounds 3

echo "== pause chaos (short: 4 SIGSTOP/SIGCONT of leaders and the controller; the long run is scripts/chaos.sh --fault pause --rounds 30)"
bash scripts/chaos.sh --no-build --fault pause --rounds 4

echo "== transactions chaos (short: 3 kills, coordinator / leader / group coordinator; the long run is scripts/chaos-txn.sh --rounds 12)"
bash scripts/chaos-txn.sh --no-build --rounds 3

echo "== decoder fuzzing (${FUZZ_SECONDS:-60}s)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
echo "== all tests passed"
