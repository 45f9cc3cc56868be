#!/usr/bin/env bash
# Side-by-side benchmark: this broker against Apache Kafka 4.x on the same machine
# (protocol: shared design/benchmarks.md; README "Performance").
#
# Usage: scripts/bench.sh [--quick] [--pairs N] [--no-pin] [--no-build] [--only W1,W2,W3,W5,W7]
#        scripts/bench.sh --summarize target/bench/runs/<id>     (re-print a finished run)
#
#   --quick     small volumes, 3 pairs: under five minutes once built (full run: under thirty)
#   --pairs N   interleaved pairs per figure (default 3 quick, 5 full; at least 3 is sensible)
#   --no-pin    do not pin (default: brokers on the upper half of the cpus, load generators on
#               the lower half, with taskset)
#   --no-build  use target/release/broker as it is
#   --only      a subset of the workloads (W3 needs W2's rates and runs W2 too)
#
# What it does: builds the broker (cargo build --release), installs librdkafka-dev (apt) if
# missing and compiles scripts/bench/rdkgen.c (the librdkafka load generator), resolves
# Kafka's jars through scripts/kafka-reference.sh, then runs scripts/bench/bench.py: W1, W2,
# W3, W5 and W7 against both brokers with Kafka's ProducerPerformance, ConsumerPerformance,
# EndToEndLatency (run by scripts/bench/BenchDriver.java in one warm JVM) and rdkgen,
# interleaved. Prints a Markdown table; raw output under
# target/bench/runs/<id>/, summary in target/bench/summary.json and summary.md.
#
# Environment: KAFKA_VERSION (4.1.1), KAFKA_HEAP_OPTS ("-Xms1G -Xmx1G"), CARGO (cargo).
# Processes are stopped by the pids this script started, never by name.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
BENCH_DIR="$REPO_DIR/target/bench"
BIN_DIR="$BENCH_DIR/bin"

say() { echo "[bench] $*" >&2; }
die() { say "error: $*"; exit 1; }

build=1
pass=()
summarize=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick|--no-pin) pass+=("$1") ;;
        --pairs|--only) [[ $# -ge 2 ]] || die "$1 needs a value"; pass+=("$1" "$2"); shift ;;
        --no-build) build=0 ;;
        --summarize) [[ $# -ge 2 ]] || die "--summarize needs a run directory"; summarize="$2"; shift ;;
        -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

command -v python3 >/dev/null || die "python3 not found"
if [[ -n "$summarize" ]]; then
    exec python3 "$SCRIPT_DIR/bench/bench.py" --summarize "$summarize" --broker-bin x --rdkgen x \
        --driver-classes x
fi

apt_install() {
    [[ $(id -u) -eq 0 ]] || die "missing $*; install it (apt-get install -y $*)"
    say "installing $* (apt)"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

mkdir -p "$BIN_DIR"
t0=$SECONDS

# 1. the broker, release mode; copied so that a concurrent rebuild cannot swap it mid-run
if (( build )); then
    say "cargo build --release"
    (cd "$REPO_DIR" && "${CARGO:-cargo}" build --release --bin broker)
fi
[[ -x "$REPO_DIR/target/release/broker" ]] || die "target/release/broker missing (build it, or drop --no-build)"
cp "$REPO_DIR/target/release/broker" "$BIN_DIR/broker.tmp" && mv "$BIN_DIR/broker.tmp" "$BIN_DIR/broker"
say "broker built in $((SECONDS - t0))s"

# 2. tools: Java 17, maven (for the jars), kcat (readiness), librdkafka-dev + cc (rdkgen)
missing=()
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v kcat >/dev/null || missing+=(kcat)
command -v cc >/dev/null || missing+=(gcc)
command -v taskset >/dev/null || missing+=(util-linux)
[[ -f /usr/include/librdkafka/rdkafka.h ]] || missing+=(librdkafka-dev)
if [[ ${#missing[@]} -gt 0 ]]; then apt_install "${missing[@]}"; fi

if [[ ! -x "$BIN_DIR/rdkgen" || "$SCRIPT_DIR/bench/rdkgen.c" -nt "$BIN_DIR/rdkgen" ]]; then
    cc -O2 -Wall -o "$BIN_DIR/rdkgen.tmp" "$SCRIPT_DIR/bench/rdkgen.c" -lrdkafka -lpthread
    mv "$BIN_DIR/rdkgen.tmp" "$BIN_DIR/rdkgen"
fi

# 3. Apache Kafka's jars (Maven Central, cached), and the Java driver that runs Kafka's
#    ProducerPerformance / ConsumerPerformance / EndToEndLatency in one warm JVM
libs="$("$REPO_DIR/scripts/kafka-reference.sh" fetch)"
if [[ ! -f "$BIN_DIR/java/BenchDriver.class" || "$SCRIPT_DIR/bench/BenchDriver.java" -nt "$BIN_DIR/java/BenchDriver.class" ]]; then
    rm -rf "$BIN_DIR/java" && mkdir -p "$BIN_DIR/java"
    javac -nowarn -cp "$libs/*" -d "$BIN_DIR/java" "$SCRIPT_DIR/bench/BenchDriver.java"
fi

say "tools ready after $((SECONDS - t0))s"
exec python3 "$SCRIPT_DIR/bench/bench.py" --broker-bin "$BIN_DIR/broker" --rdkgen "$BIN_DIR/rdkgen" \
    --driver-classes "$BIN_DIR/java" "${pass[@]}"
