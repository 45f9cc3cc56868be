#!/usr/bin/env python3
"""Figures for the Raft cluster: controller failover time after kill -9 (several runs),
CreateTopics latency through the controller and through a follower, and the metadata write
rate the Raft path sustains (sequential and with parallel clients).

Expects the three nodes of scripts/start-cluster.sh; restarts killed nodes itself.
Usage: compat-tests/.venv/bin/python scripts/cluster_figures.py [--rounds 3]
Prints a small Markdown table. Measures; asserts nothing.
"""

import argparse
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
import cluster_scenario as cs  # noqa: E402  (the same helpers as the cluster test)
from confluent_kafka.admin import NewTopic  # noqa: E402


def controller():
    ids = {cs.raw_controller(cs.PORTS[n]) for n in (1, 2, 3)}
    return ids.pop() if len(ids) == 1 and -1 not in ids else None


def stable_controller(seconds=8.0):
    """A controller every node has named for `seconds` in a row (a restarted node can
    trigger one more election when it rejoins: openraft 0.9 has no pre-vote)."""
    deadline = time.time() + 90
    current, since = None, time.time()
    while time.time() < deadline:
        c = controller()
        if c is None or c != current:
            current, since = c, time.time()
        elif time.time() - since >= seconds:
            return current
        time.sleep(0.1)
    return current


def failover_once():
    old = stable_controller()
    cs.kill9(old)
    t0 = time.time()
    survivors = [n for n in (1, 2, 3) if n != old]

    def elected():
        ids = {cs.raw_controller(cs.PORTS[n]) for n in survivors}
        return len(ids) == 1 and -1 not in ids and old not in ids

    cs.wait(elected, 60, 0.02)
    took = time.time() - t0
    cs.start(old)
    cs.wait(lambda: controller() is not None and cs.raw_controller(cs.PORTS[old]) >= 0, 60)
    return took


def create_latency(node, count):
    client = cs.admin(node)
    times = []
    for _ in range(count):
        name = f"lat-{uuid.uuid4().hex[:10]}"
        t0 = time.time()
        client.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
        times.append((time.time() - t0) * 1000)
    return times


def write_rate(node, threads, seconds):
    done = [0]
    lock = threading.Lock()
    stop = time.time() + seconds

    def worker():
        client = cs.admin(node)
        while time.time() < stop:
            name = f"rate-{uuid.uuid4().hex[:12]}"
            client.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
            with lock:
                done[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    failovers = [failover_once() for _ in range(args.rounds)]
    c = cs.wait(controller, 60)
    follower = next(n for n in (1, 2, 3) if n != c)
    lat_leader = create_latency(c, 20)
    lat_follower = create_latency(follower, 20)
    seq = write_rate(c, 1, 10)
    par = write_rate(c, 8, 10)
    med = statistics.median
    print("| figure | value |")
    print("|---|---|")
    print(f"| controller failover after kill -9 (median of {args.rounds}) | {med(failovers):.2f} s "
          f"(min {min(failovers):.2f}, max {max(failovers):.2f}) |")
    print(f"| CreateTopics latency via the controller (median / p90 of 20) | {med(lat_leader):.1f} ms / "
          f"{sorted(lat_leader)[17]:.1f} ms |")
    print(f"| CreateTopics latency via a follower (median / p90 of 20) | {med(lat_follower):.1f} ms / "
          f"{sorted(lat_follower)[17]:.1f} ms |")
    print(f"| metadata writes (CreateTopics), 1 client | {seq:.0f} /s |")
    print(f"| metadata writes (CreateTopics), 8 clients | {par:.0f} /s |")


if __name__ == "__main__":
    main()
