#!/usr/bin/env bash
# CPU profile of this broker under one benchmark load, for the "why" behind a figure of
# scripts/bench.sh. Starts target/bench/bin/broker (the binary bench.sh measured) on a free
# port, pinned like bench.sh (broker cpu 1, load generator cpu 0 on a 2-cpu machine), drives it
# with rdkgen, and records it with `perf record -e cpu-clock --call-graph dwarf` (Debian:
# linux-perf; PERF_CALLGRAPH=fp for frame pointers).
#
# Usage: scripts/bench/profile.sh produce16|produce1|consume|e2e|restart100 [records-or-rate]
#   produce16  W2 shape: 16 partitions, 4 producers, 2M records of 1 KiB, max rate
#   produce1   W1 shape: 1 partition, acks=all, 1M records
#   consume    W5 shape: load 1 GiB into 16 partitions, then read it from offset 0
#   e2e        W3 shape: fixed rate (default 100000 records/s) for 10 s, 4 producers
#   restart100 W7 shape: restart over a data dir with a 100-partition topic
#
# Output: target/bench/profile/<load>-<time>/ with perf.data, report.txt (self time by
# symbol), callers.txt (call graph of the top symbols), syscalls.txt (perf trace over a second
# run of the same load: every syscall of 5 ms or more, and per-syscall count / min / avg /
# max duration), for e2e sched-latency.txt (perf sched: how long the broker's threads waited
# for a cpu), the generator's JSON lines and the broker's cpu seconds.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
BIN="$REPO_DIR/target/bench/bin"
load="${1:-}"
arg="${2:-}"
[[ -x "$BIN/broker" && -x "$BIN/rdkgen" ]] || { echo "run scripts/bench.sh first (it builds target/bench/bin)" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf missing: apt-get install -y linux-perf" >&2; exit 1; }

if (( $(nproc) >= 2 )); then PB=(taskset -c 1); PC=(taskset -c 0); else PB=(); PC=(); fi
out="$REPO_DIR/target/bench/profile/$load-$(date +%H%M%S)"
mkdir -p "$out"
data="$(mktemp -d /tmp/bench-profile-XXXXXX)"
port=""
for _ in $(seq 1 200); do
    p=$((30000 + RANDOM % 29000))
    case "$p" in 9092|19092|29192|29292|29392) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n "$port" ]] || { echo "no free port" >&2; exit 1; }
printf '{"data_dir": "%s/data", "server": {"host": "127.0.0.1", "port": "%s"}}\n' "$data" "$port" > "$data/broker.json"
TOKIO_WORKER_THREADS=1 "${PB[@]}" "$BIN/broker" --config "$data/broker.json" > "$out/broker.log" 2>&1 &
pid=$!
cleanup() { [[ "$pid" != 0 ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$data"; }
trap cleanup EXIT
B="127.0.0.1:$port"
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
G=("${PC[@]}" "$BIN/rdkgen")

case "$load" in
    produce16)
        "${G[@]}" create -b "$B" -t p16:16,warm:16 >/dev/null
        "${G[@]}" produce -b "$B" -t warm -n 200000 -P 4 >/dev/null
        cmd=("${G[@]}" produce -b "$B" -t p16 -n "${arg:-2000000}" -P 4) ;;
    produce1)
        "${G[@]}" create -b "$B" -t p1:1,warm:1 >/dev/null
        "${G[@]}" produce -b "$B" -t warm -n 200000 -a all >/dev/null
        cmd=("${G[@]}" produce -b "$B" -t p1 -n "${arg:-1000000}" -a all) ;;
    consume)
        "${G[@]}" create -b "$B" -t c16:16 >/dev/null
        "${G[@]}" produce -b "$B" -t c16 -n 1048576 -P 4 >/dev/null
        cmd=("${G[@]}" consume -b "$B" -t c16 -n 1048576) ;;
    restart100)
        # W7: stop the broker over a data dir with a 100-partition topic, then start it again
        # under perf (cpu profile) and strace (wall time per syscall), each time timed by
        # rdkgen probe from exec to the first acknowledged produce
        "${G[@]}" create -b "$B" -t w7-p100:100 >/dev/null
        "${G[@]}" produce -b "$B" -t w7-p100 -n 1000 >/dev/null
        kill "$pid"; wait "$pid" || true
        bcmd=("${PB[@]}" "$BIN/broker" --config "$data/broker.json")
        for how in plain perf strace; do
            case "$how" in
                plain) wrap=() ;;
                perf) wrap=(perf record -e cpu-clock -F 4999 --call-graph "${PERF_CALLGRAPH:-dwarf,32768}" -o "$out/perf.data") ;;
                strace) wrap=(strace -f -w -c -o "$out/syscalls.txt") ;;
            esac
            "${G[@]}" probe -b "$B" -t w7-p100 -- sh -c 'exec "$@" >>"'"$out/broker.log"'" 2>&1 </dev/null' sh \
                "${wrap[@]}" env TOKIO_WORKER_THREADS=1 "${bcmd[@]}" > "$out/probe-$how.json" 2>/dev/null || true
            echo "$how: $(cat "$out/probe-$how.json")"
            pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$out/probe-$how.json")
            if [[ -n "$pid" ]]; then
                # the broker is $pid itself (plain) or the child of perf / strace: SIGTERM it,
                # then the wrapper writes its report and exits
                child="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{print $1}')"
                [[ "$how" != plain && -n "$child" ]] && kill "$child" 2>/dev/null || kill "$pid" 2>/dev/null || true
                for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
            fi
        done
        perf report -i "$out/perf.data" --no-children --sort symbol --percent-limit 1 --stdio 2>/dev/null | grep -v '^$' > "$out/report.txt" || true
        perf report -i "$out/perf.data" --children --sort symbol --percent-limit 3 --stdio -g none 2>/dev/null | grep -v '^$' > "$out/callers.txt" || true
        echo "== top of $out/report.txt"; grep -E '^ +[0-9]' "$out/report.txt" | head -20
        echo "== wall time by syscall at startup ($out/syscalls.txt)"; head -14 "$out/syscalls.txt"
        pid=0
        exit 0 ;;
    e2e)
        "${G[@]}" create -b "$B" -t e16:16 >/dev/null
        cmd=("${G[@]}" e2e -b "$B" -t e16 -r "${arg:-100000}" -d 10 -P 4) ;;
    *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
perf record -e cpu-clock -F 999 --call-graph "${PERF_CALLGRAPH:-dwarf,32768}" -p "$pid" -o "$out/perf.data" 2> "$out/perf-record.log" &
perf_pid=$!
sleep 0.3
"${cmd[@]}" | tee "$out/generator.json"
kill -INT "$perf_pid"; wait "$perf_pid" || true
t1=$(ticks)
echo "broker cpu seconds during the load: $(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')" | tee "$out/broker-cpu.txt"

perf report -i "$out/perf.data" --no-children --sort symbol --percent-limit 1 --stdio 2>/dev/null \
    | grep -v '^$' > "$out/report.txt" || true
perf report -i "$out/perf.data" --children --sort symbol --percent-limit 5 --stdio -g caller,0.5,callee --max-stack 12 2>/dev/null \
    > "$out/callers.txt" || true

# syscalls of the same load again: count and duration (min/avg/max) of each, from the syscall
# tracepoints (perf trace -s), and every call of the broker that took 5 ms or more
case "$load" in
    consume) cmd2=("${G[@]}" consume -b "$B" -t c16 -n 1048576) ;;
    *) cmd2=("${cmd[@]}") ;;
esac
perf trace -s -p "$pid" --duration 5 -o "$out/syscalls.txt" 2>/dev/null &
trace_pid=$!
sleep 0.5
"${cmd2[@]}" > "$out/generator-traced.json" || true
kill -INT "$trace_pid" 2>/dev/null; wait "$trace_pid" 2>/dev/null || true

# e2e (latency): how long the broker's threads waited for a cpu (perf sched, whole machine)
if [[ "$load" == e2e ]]; then
    perf sched record -a -o "$out/sched.data" -- "${cmd[@]}" > "$out/generator-sched.json" 2> "$out/sched-record.log" || true
    perf sched latency -i "$out/sched.data" --sort max 2>/dev/null | grep -E 'Task|broker|^ -' | head -8 > "$out/sched-latency.txt" || true
fi

echo "== top of $out/report.txt"
grep -E '^ +[0-9]' "$out/report.txt" | head -25
echo "== syscalls >= 5 ms and per-syscall summary ($out/syscalls.txt)"
grep -cE '^ *[0-9.]+ \( *[0-9.]+ ms\)' "$out/syscalls.txt" 2>/dev/null | sed 's/^/calls of 5 ms or more: /' || true
grep -E '^ +[a-z_0-9]+ +[0-9]+ ' "$out/syscalls.txt" | sort -k2 -nr | head -12 || true
if [[ -s "$out/sched-latency.txt" ]]; then
    echo "== scheduling delay of the broker's threads ($out/sched-latency.txt)"
    cat "$out/sched-latency.txt"
    cat "$out/generator-sched.json"
fi
