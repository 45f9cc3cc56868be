#!/usr/bin/env python3
"""The cluster scenario of scripts/test-cluster.sh, with real clients (confluent-kafka).

Expects the three nodes of scripts/start-cluster.sh (127.0.0.1:9092-9094, pids in
logs/node{1,2,3}.pid). Prints `PASS step` / `FAIL step: why` per step; exits non-zero on a
failure. Steps:
  agree            every node lists the same three brokers and the same controller
  create_follower  a topic (replication factor 3) created through a non-controller node
                   appears on every node, its partitions led by several brokers
  produce_consume  records produced through the cluster with acks=all (each partition to its
                   leader, min.insync.replicas 2 from the configs) are read back in full
  controller_kill  kill -9 the controller: a new one is elected within seconds and topic
                   creation works again
  rejoin           the killed node restarts and learns what it missed
  full_restart     all three stop and start again: every topic is still there
"""

import os
import signal
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# librdkafka logs every refused connection while nodes are down on purpose: keep only
# critical messages (the steps print what matters).
QUIET = 2
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTS = {1: 9092, 2: 9093, 3: 9094}
BIN = os.path.join(ROOT, "target", "release", "broker")
failures = 0


def report(step, ok, why=""):
    global failures
    if ok:
        print(f"PASS {step}", flush=True)
    else:
        failures += 1
        print(f"FAIL {step}: {why}", flush=True)


def admin(node):
    return AdminClient({"bootstrap.servers": f"127.0.0.1:{PORTS[node]}", "socket.timeout.ms": 5000,
                        "log_level": QUIET})


def cluster_view(node):
    md = admin(node).list_topics(timeout=10)
    return md


def controller_of(node):
    client = admin(node)  # keep the client alive until the future completes
    desc = client.describe_cluster(request_timeout=10).result(timeout=15)
    return desc.controller.id if desc.controller else -1, sorted(n.id for n in desc.nodes)


def wait(predicate, timeout, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - a node may be restarting
            last = e
        time.sleep(interval)
    if last:
        print(f"  (last error: {last})", flush=True)
    return None


def raw_controller(port):
    """The controller id in a Metadata v1 response from exactly this broker (no client-side
    routing to other, possibly dead, brokers)."""
    import socket
    import struct
    body = struct.pack(">hhih", 3, 1, 7, 5) + b"probe" + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        data = b""
        while len(data) < 4:
            data += s.recv(4 - len(data))
        size = struct.unpack(">i", data)[0]
        data = b""
        while len(data) < size:
            chunk = s.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
    at = 4
    (n,) = struct.unpack_from(">i", data, at)
    at += 4
    for _ in range(n):
        at += 4
        (hl,) = struct.unpack_from(">h", data, at)
        at += 2 + hl + 4
        (rl,) = struct.unpack_from(">h", data, at)
        at += 2 + max(rl, 0)
    return struct.unpack_from(">i", data, at)[0]


def pid_of(node):
    with open(os.path.join(ROOT, "logs", f"node{node}.pid")) as f:
        return int(f.read().strip())


def kill9(node):
    pid = pid_of(node)
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def start(node):
    log = open(os.path.join(ROOT, "logs", f"node{node}.stderr"), "ab")
    p = subprocess.Popen([BIN, f"-config=configs/broker-cluster-node{node}.json"], cwd=ROOT,
                         stdout=log, stderr=log, start_new_session=True)
    with open(os.path.join(ROOT, "logs", f"node{node}.pid"), "w") as f:
        f.write(str(p.pid))


def stop(node):
    pid = pid_of(node)
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def agreed(nodes):
    views = [controller_of(n) for n in nodes]
    controllers = {c for c, _ in views}
    brokers = {tuple(b) for _, b in views}
    if len(controllers) == 1 and -1 not in controllers and len(brokers) == 1:
        return views[0]
    return None


def main():
    topics = []
    view = wait(lambda: agreed([1, 2, 3]), 30)
    report("agree", view is not None and view[1] == [1, 2, 3],
           f"nodes disagree or miss brokers: {[controller_of(n) for n in (1, 2, 3)] if view is None else view}")
    if view is None:
        return
    controller = view[0]

    follower = next(n for n in (1, 2, 3) if n != controller)
    topic = f"cluster-{uuid.uuid4().hex[:8]}"
    topics.append(topic)
    client = admin(follower)
    client.create_topics([NewTopic(topic, 6, 3)])[topic].result(timeout=30)

    def visible_everywhere():
        leaders = []
        for n in (1, 2, 3):
            t = cluster_view(n).topics.get(topic)
            if t is None or len(t.partitions) != 6 or any(p.leader < 0 for p in t.partitions.values()):
                return None
            leaders.append(sorted({p.leader for p in t.partitions.values()}))
        return leaders[0]

    leaders = wait(visible_everywhere, 20)
    report("create_follower", leaders is not None and len(leaders) >= 2,
           f"topic not on every node or on one broker only: {leaders}")

    producer = Producer({"bootstrap.servers": "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094", "acks": "all",
                         "log_level": QUIET})
    sent = 600
    errors = []
    for i in range(sent):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode(),
                         on_delivery=lambda err, msg: err and errors.append(str(err)))
    left = producer.flush(60)
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{PORTS[follower]}", "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True, "log_level": QUIET})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    got, eof = set(), set()
    deadline = time.time() + 60
    while len(eof) < 6 and time.time() < deadline:
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
            continue
        got.add(int(m.key()))
    consumer.close()
    del producer
    report("produce_consume", not errors and left == 0 and len(got) == sent,
           f"sent {sent}, read {len(got)}, errors {errors[:2]}, unsent {left}")

    kill9(controller)
    t0 = time.time()
    survivors = [n for n in (1, 2, 3) if n != controller]

    def elected():
        ids = {raw_controller(PORTS[n]) for n in survivors}
        return len(ids) == 1 and -1 not in ids and controller not in ids

    wait(elected, 30, 0.05)
    elected_after = time.time() - t0

    def new_controller():
        v = agreed(survivors)
        return v if v and v[0] != controller else None

    v = wait(new_controller, 30, 0.2)
    topic2 = f"after-kill-{uuid.uuid4().hex[:8]}"
    ok = v is not None
    if ok:
        try:
            client = admin(survivors[0])
            # Two brokers are live: replication factor 2 (3 is refused until the third returns).
            client.create_topics([NewTopic(topic2, 2, 2)])[topic2].result(timeout=30)
            topics.append(topic2)
        except Exception as e:  # noqa: BLE001
            ok = False
            print(f"  create after kill: {e}", flush=True)
    report("controller_kill", ok, f"no new controller or creation failed (after {elapsed(t0)})")
    if v is not None:
        print(f"  new controller {v[0]} elected {elected_after:.1f}s after kill -9", flush=True)

    start(controller)

    def caught_up():
        t = cluster_view(controller).topics.get(topic2)
        return t is not None and len(t.partitions) == 2 and agreed([1, 2, 3])

    report("rejoin", wait(caught_up, 60) is not None, "the restarted node did not learn the new topic")

    for n in (1, 2, 3):
        stop(n)
    for n in (1, 2, 3):
        start(n)

    def all_topics_back():
        if not agreed([1, 2, 3]):
            return None
        return all(all(t in cluster_view(n).topics for t in topics) for n in (1, 2, 3))

    report("full_restart", wait(all_topics_back, 60) is not None, "topics missing after a full restart")


def elapsed(t0):
    return f"{time.time() - t0:.1f}s"


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
