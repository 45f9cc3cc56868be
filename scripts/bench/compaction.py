#!/usr/bin/env python3
"""Figures of log compaction on this broker (scripts/bench-compaction.sh runs it).

1. Bytes on disk of a compacted topic after UPDATES keyed updates over KEYS keys, before and
   after the log cleaner ran, and the cleaner's throughput (MB/s of dirty log read, from the
   broker's "cleaned a compacted log" lines).
2. Produce throughput of keyed updates to a compacted topic with the cleaner off, and with it
   cleaning the same topic as segments roll (cleaner backoff 1 s).
3. Start-up time (process start to a group's committed offsets answered) of a broker whose
   __consumer_offsets holds COMMITS offset commits, before and after compaction.

Usage: compaction.py BROKER_BIN WORK_DIR [--updates N] [--keys N] [--commits N]
Prints a Markdown table and writes WORK_DIR/compaction.json.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, binary, work, cleaner=True):
        self.binary, self.work = binary, work
        os.makedirs(work, exist_ok=True)
        self.port = free_port()
        self.data = os.path.join(work, "data")
        self.log = os.path.join(work, "broker.log")
        self.config = os.path.join(work, "broker.json")
        self.set_cleaner(cleaner)
        self.proc = None

    def set_cleaner(self, enabled):
        with open(self.config, "w") as f:
            json.dump({
                "data_dir": self.data,
                "server": {"host": "127.0.0.1", "port": self.port, "log_file": self.log},
                "offsets_topic_partitions": 1,
                "cleaner": {"enabled": enabled, "backoff": "1s"},
            }, f)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return time.monotonic() - started
            except OSError:
                if time.monotonic() - started > 120:
                    raise RuntimeError("the broker did not start")
                time.sleep(0.01)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(60)
            self.proc = None


def log_bytes(data, topic):
    d = os.path.join(data, f"{topic}-0")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))


def create(bootstrap, topic, configs, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, partitions, 1, config=configs)])
    for f in fs.values():
        f.result(30)


def produce_updates(bootstrap, topic, updates, keys, value_size=100):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 262144,
                  "compression.type": "none", "acks": "all",
                  "queue.buffering.max.messages": 1000000})
    value = b"v" * value_size
    errors = []
    started = time.monotonic()
    for i in range(updates):
        while True:
            try:
                p.produce(topic, key=b"key-%d" % (i % keys), value=value,
                          on_delivery=lambda e, m: e and errors.append(e))
                break
            except BufferError:
                p.poll(0.01)
        if i % 10000 == 0:
            p.poll(0)
    p.flush(120)
    secs = time.monotonic() - started
    if errors:
        raise RuntimeError(f"{len(errors)} delivery errors, first {errors[0]}")
    return updates / secs, updates * (value_size + 8) / secs / 1e6


def cleaner_lines(log_path, topic):
    out = []
    if not os.path.exists(log_path):
        return out
    for line in open(log_path, errors="replace"):
        if "cleaned a compacted log" in line and f"topic={topic} " in line:
            fields = dict(re.findall(r'(\w+)="?([\w.\-]+)"?', line))
            out.append(fields)
    return out


def wait_compacted(broker, topic, live_bytes_bound, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        size = log_bytes(broker.data, topic)
        if size <= live_bytes_bound:
            return size
        time.sleep(0.5)
    return log_bytes(broker.data, topic)


def commit_many(bootstrap, topic, partitions, commits):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-group",
                  "enable.auto.commit": False})
    done = 0
    n = 0
    while done < commits:
        n += 1
        offsets = [TopicPartition(topic, p, n) for p in range(partitions)]
        c.commit(offsets=offsets, asynchronous=False)
        done += partitions
    c.close()


def committed_answered(bootstrap, topic, started, limit=120):
    while time.monotonic() - started < limit:
        try:
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-group",
                          "enable.auto.commit": False})
            got = c.committed([TopicPartition(topic, 0)], timeout=5)
            c.close()
            if got and got[0].offset > 0:
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError("the committed offsets were not answered")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("work")
    ap.add_argument("--updates", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=1_000_000)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    results = {}
    seg = {"cleanup.policy": "compact", "segment.bytes": str(8 << 20),
           "min.cleanable.dirty.ratio": "0.5"}

    # 1 and 2 (cleaner off): a topic of updates, its size, the produce rate.
    b = Broker(a.binary, os.path.join(a.work, "one"), cleaner=False)
    b.start()
    create(b.bootstrap, "kv-off", seg)
    rate_off, mb_off = produce_updates(b.bootstrap, "kv-off", a.updates, a.keys)
    before = log_bytes(b.data, "kv-off")
    b.stop()
    # The cleaner on: it compacts kv-off, then kv-on while it is written.
    b.set_cleaner(True)
    b.start()
    live = a.keys * 200 + (8 << 20)  # the live keys plus at most one active segment
    after = wait_compacted(b, "kv-off", live)
    lines = cleaner_lines(b.log, "kv-off")
    create(b.bootstrap, "kv-on", seg)
    rate_on, mb_on = produce_updates(b.bootstrap, "kv-on", a.updates, a.keys)
    on_lines = cleaner_lines(b.log, "kv-on")
    b.stop()
    read_mb = sum(float(x.get("read_mb", 0)) for x in lines)
    speeds = [float(x["mb_per_s"]) for x in lines if "mb_per_s" in x]
    results["compaction"] = {
        "updates": a.updates, "keys": a.keys, "bytes_before": before, "bytes_after": after,
        "cleanings": len(lines), "cleaner_read_mb": read_mb,
        "cleaner_mb_per_s": max(speeds) if speeds else None,
    }
    results["produce"] = {
        "records_per_s_cleaner_off": rate_off, "mb_per_s_cleaner_off": mb_off,
        "records_per_s_cleaner_on": rate_on, "mb_per_s_cleaner_on": mb_on,
        "cleanings_during_produce": len(on_lines),
    }

    # 3: start-up with a large __consumer_offsets, before and after compaction.
    g = Broker(a.binary, os.path.join(a.work, "offsets"), cleaner=False)
    g.start()
    create(g.bootstrap, "committed", {}, partitions=100)
    t0 = time.monotonic()
    commit_many(g.bootstrap, "committed", 100, a.commits)
    commit_secs = time.monotonic() - t0
    g.stop()
    offsets_before = log_bytes(g.data, "__consumer_offsets")
    started = time.monotonic()
    g.start()
    startup_before = committed_answered(g.bootstrap, "committed", started)
    g.stop()
    g.set_cleaner(True)
    g.start()
    wait_compacted(g, "__consumer_offsets", 100 * 200 + (100 << 20), limit=120)
    time.sleep(2)
    g.stop()
    offsets_after = log_bytes(g.data, "__consumer_offsets")
    started = time.monotonic()
    g.start()
    startup_after = committed_answered(g.bootstrap, "committed", started)
    g.stop()
    results["startup"] = {
        "commits": a.commits, "commit_seconds": commit_secs,
        "offsets_bytes_before": offsets_before, "offsets_bytes_after": offsets_after,
        "startup_s_before": startup_before, "startup_s_after": startup_after,
    }
    with open(os.path.join(a.work, "compaction.json"), "w") as f:
        json.dump(results, f, indent=2)
    c, p, s = results["compaction"], results["produce"], results["startup"]
    print("| figure | value |\n|---|---|")
    print(f"| compacted topic, {c['updates']} updates over {c['keys']} keys: bytes before | {c['bytes_before']:,} |")
    print(f"| ... after the cleaner | {c['bytes_after']:,} ({c['bytes_after'] / max(c['bytes_before'], 1):.1%}) |")
    print(f"| cleaner throughput (MB/s of dirty log read, best cleaning) | {c['cleaner_mb_per_s']} |")
    print(f"| produce, cleaner off | {p['records_per_s_cleaner_off']:,.0f} rec/s ({p['mb_per_s_cleaner_off']:.1f} MB/s) |")
    print(f"| produce, cleaner compacting the same topic ({p['cleanings_during_produce']} cleanings) | {p['records_per_s_cleaner_on']:,.0f} rec/s ({p['mb_per_s_cleaner_on']:.1f} MB/s) |")
    print(f"| __consumer_offsets after {s['commits']:,} commits: bytes before / after compaction | {s['offsets_bytes_before']:,} / {s['offsets_bytes_after']:,} |")
    print(f"| start-up to committed offsets answered: before / after | {s['startup_s_before']:.2f} s / {s['startup_s_after']:.2f} s |")


if __name__ == "__main__":
    sys.exit(main())
