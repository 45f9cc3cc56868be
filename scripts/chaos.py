#!/usr/bin/env python3
"""Chaos test: acks=all writes survive kill -9 (or SIGSTOP) of partition leaders.

The promise under test: a topic with replication factor 3 and min.insync.replicas 2 keeps
accepting acks=all writes while a partition leader is kill -9ed, and every acknowledged
record can be read back exactly once, in order. With --fault pause: the cluster comes back
(every partition has a leader again, no broker stays fenced) after nodes, the controller
among them, are frozen long enough to be fenced, one after the other.

What it does:
  1. builds the broker (unless --no-build) and starts a private three-node cluster in
     target/chaos/<timestamp>/ (brokers on --base-port.., Raft on --raft-base-port.., so it
     does not collide with scripts/start-cluster.sh);
  2. creates topic `chaos` (--partitions P, replication factor 3, min.insync.replicas 2);
  3. runs an idempotent acks=all producer at --rate records/s in a thread; record `seq`
     has value b"<seq>" and goes to partition seq % P; every acknowledgement records
     (partition, offset, seq);
  4. for each round: kill -9 the leader of a random partition, measure until a record
     produced after the kill is acknowledged on every partition that node led (the
     failover time; a failure if none is acknowledged while the node is down), also on the
     partitions it followed (printed, a warning only), keep producing --down seconds in
     all, restart the node and wait until it is back in the ISR of every partition (a
     warning if not within 60 s);
  5. stops the producer (flush), reads every partition from the beginning to its high
     watermark and checks: no acknowledged record is lost, no record is read twice, each
     partition's records are in produce order, each acknowledged (partition, offset) holds
     the record it was acknowledged for, and writes were acknowledged while each killed
     node was down.

--fault pause (the default is --fault kill, steps 4 above) instead freezes nodes, as a
stalled host or a long GC pause would. The nodes run with the repository's cluster timings
(configs/broker-cluster-node1.json: rtt_ms 100, election_rtt 10, heartbeat_rtt 1,
check_quorum; so a 1 s election timeout and a 3 s broker session timeout; --rtt-ms
overrides it; kill mode uses 50). Step 4 becomes, for each round:
  4p. SIGSTOP the victim, keep it stopped --pause seconds (default 8: longer than the
     session timeout, so the controller fences it), SIGCONT it, and wait --gap seconds
     (default a random 2-5 s from --seed) before the next round, without waiting for the
     ISR to recover: the next pause comes while the cluster is still recovering. The
     victim alternates: odd rounds the leader of a random partition (one that is not the
     controller when there is a choice), even rounds the controller as the nodes report it
     right then. The first acknowledgement of a record produced after the SIGSTOP on each
     partition the victim led is timed, up to the next SIGSTOP (failover_s; not a failure:
     the idempotent producer waits for the frozen leader's answer to its requests in flight);
  4q. after the last SIGCONT: within --settle seconds (default 30) every node must answer
     Metadata itself listing all three brokers (a fenced broker is left out), all must name
     the same controller, and every partition must have a leader (a failure otherwise: the
     state each node reports is printed); then a record produced after that check must be
     acknowledged on every partition within the same --settle seconds of the last SIGCONT
     (at least 5 s after the check; an ack just after the SIGCONT does not count: a leader
     can take writes for a moment and then lose its partitions to a fence).
  Step 5 is the same; a partition that has no leader by then cannot be read and its
  acknowledged records count as lost (the failure names the unreadable partitions).
  A stopped node is always continued (SIGCONT) before it is stopped, also on Ctrl-C and on
  the watchdog; only a SIGKILL of this script itself can leave one stopped.

Run it with scripts/chaos.sh (creates the Python venv with confluent-kafka):
  scripts/chaos.sh                  # 3 rounds, ~1-2 minutes
  scripts/chaos.sh --rounds 12      # the long run
  scripts/chaos.sh --no-build --keep --rounds 1 --partitions 6 --rate 500 --seed 7
  scripts/chaos.sh --fault pause --rounds 6  # ~75 s; ~100 s when it does not settle
  scripts/chaos.sh --fault pause --pause 5 --gap 3 --settle 60 --rtt-ms 50

The last line is `chaos: rounds=.. kills=.. acked=.. read=.. lost=.. duplicated=..
out_of_order=.. failed_deliveries=.. failover_s median=.. max=..`; in pause mode `pauses=..`
instead of `kills=..` and `settle_s=..` at the end (seconds from the last SIGCONT until the
cluster settled, n/a if it did not within --settle). Exit status: 0 when every
check passed, 1 when a check failed, 2 when the scenario could not run (build failed, a node
did not start, the topic was refused), 124 on the watchdog, 130 on Ctrl-C / SIGTERM. The
work directory (configs, node logs) is removed after a passing run unless --keep; after any
other outcome its path is printed.

Failed deliveries (records the producer gave up on) are counted and printed but are not a
failure by themselves: the promise is about acknowledged records.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "broker")
TOPIC = "chaos"
NODE_IDS = (1, 2, 3)
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2

# librdkafka logs every refused connection while a node is down on purpose: keep only
# critical messages (the script prints what matters).
QUIET = 2

STARTUP_TIMEOUT = 60      # all nodes up, one controller, three brokers
TOPIC_TIMEOUT = 60        # topic created and every partition's ISR complete
FAILOVER_TIMEOUT = 30     # longest wait for writes to resume on the killed node's partitions
ISR_TIMEOUT = 60          # restarted node back in every ISR
TAIL_SECONDS = 2          # producing after the last round
FLUSH_TIMEOUT = 60        # producer.flush at the end
VERIFY_TIMEOUT = 120      # reading everything back
STOP_TIMEOUT = 15         # SIGTERM -> SIGKILL
WRITES_MIN_WAIT = 5       # pause mode: the writes check waits this long at least
KILL_RTT_MS = 50          # Raft rtt_ms of the nodes in kill mode
PAUSE_RTT_MS = 100        # in pause mode: configs/broker-cluster-node1.json (the default)

START = time.monotonic()
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(message):
    print(f"[{time.monotonic() - START:7.1f}s] {message}", flush=True)


class SetupError(Exception):
    """The scenario could not run (build, node start, topic creation)."""


class Aborted(BaseException):
    """Watchdog, Ctrl-C or SIGTERM: stop everything and exit with `code`."""

    def __init__(self, reason, code):
        super().__init__(reason)
        self.code = code


def wait_for(predicate, timeout, interval=0.25, check=None):
    """Calls predicate until it returns something truthy (returned) or timeout passes (None).
    Exceptions from predicate (a node restarting, a metadata timeout) count as "not yet".
    `check` runs every iteration and may raise to give up early."""
    deadline = time.monotonic() + timeout
    while True:
        if check:
            check()
        try:
            value = predicate()
            if value:
                return value
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def admin_client(bootstrap):
    # Reconnect quickly to a restarted node (librdkafka backs off up to 10 s by default).
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000,
                        "reconnect.backoff.max.ms": 500, "log_level": QUIET})


def probe_metadata(port):
    """Metadata v1 (no topics) sent to exactly this port: (set of broker ids, controller id)."""
    brokers, controller, _ = probe_topic_metadata(port, None)
    return brokers, controller


def probe_topic_metadata(port, topic):
    """Metadata v1 sent to exactly this port, for `topic` (None: no topics): (set of broker
    ids, controller id, {partition: (leader, replicas, isr)}, or None if the node reports an
    error for the topic)."""
    names = [] if topic is None else [topic.encode()]
    request = struct.pack(">hhih", 3, 1, 1, 5) + b"chaos" + struct.pack(">i", len(names)) \
        + b"".join(struct.pack(">h", len(n)) + n for n in names)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(request)) + request)

        def read(n):
            data = b""
            while len(data) < n:
                chunk = s.recv(n - len(data))
                if not chunk:
                    raise OSError("connection closed")
                data += chunk
            return data

        (size,) = struct.unpack(">i", read(4))
        data = read(size)
    at = 4  # correlation id
    (count,) = struct.unpack_from(">i", data, at)
    at += 4
    brokers = set()
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", data, at)
        brokers.add(node_id)
        (host_len,) = struct.unpack_from(">h", data, at + 4)
        at += 4 + 2 + host_len + 4  # node id, host, port
        (rack_len,) = struct.unpack_from(">h", data, at)
        at += 2 + max(rack_len, 0)
    (controller,) = struct.unpack_from(">i", data, at)
    at += 4
    if topic is None:
        return brokers, controller, None

    def int32s():
        nonlocal at
        (n,) = struct.unpack_from(">i", data, at)
        values = list(struct.unpack_from(f">{max(n, 0)}i", data, at + 4))
        at += 4 + 4 * max(n, 0)
        return values

    partitions = None
    (topic_count,) = struct.unpack_from(">i", data, at)
    at += 4
    for _ in range(topic_count):
        error, name_len = struct.unpack_from(">hh", data, at)
        name = data[at + 4:at + 4 + max(name_len, 0)].decode(errors="replace")
        at += 4 + max(name_len, 0) + 1  # error, name, is_internal
        (partition_count,) = struct.unpack_from(">i", data, at)
        at += 4
        parts = {}
        for _ in range(partition_count):
            _error, index, leader = struct.unpack_from(">hii", data, at)
            at += 10
            replicas = int32s()
            parts[index] = (leader, replicas, int32s())
        if name == topic and error == 0:
            partitions = parts
    return brokers, controller, partitions


# ---- the cluster ---------------------------------------------------------------------------


class Node:
    """One broker process with its config and logs in the work directory."""

    def __init__(self, node_id, work, port, raft_ports, rtt_ms):
        self.id = node_id
        self.port = port
        self.config_path = os.path.join(work, f"node{node_id}.json")
        self.stderr_path = os.path.join(work, f"node{node_id}.stderr")
        self.log_path = os.path.join(work, f"node{node_id}.log")
        self.proc = None
        raft = [f"127.0.0.1:{p}" for p in raft_ports]
        config = {
            "data_dir": os.path.join(work, f"data-node{node_id}"),
            "max_topic_partitions": 16,
            "default_replication_factor": REPLICATION_FACTOR,
            "min_insync_replicas": MIN_INSYNC_REPLICAS,
            "server": {"host": "127.0.0.1", "port": str(port), "log_file": self.log_path},
            "cluster": {
                "enabled": True,
                "node_id": node_id,
                "raft_address": raft[node_id - 1],
                "initial_members": raft,
                "data_dir": os.path.join(work, f"raft-node{node_id}"),
                "election_rtt": 10,
                "heartbeat_rtt": 1,
                "rtt_ms": rtt_ms,
                "check_quorum": True,
                "snapshot_entries": 10000,
                "compaction_overhead": 5000,
            },
        }
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)

    @property
    def running(self):
        # A SIGSTOPped process is running too: poll() (waitpid without WUNTRACED) returns None.
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, signum):
        """Sends signum to our own child if it has not been reaped. Only ever signals it."""
        if self.running:
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def pause(self):
        self.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT; harmless for a node that is not stopped."""
        self.send_signal(signal.SIGCONT)

    def start(self):
        with open(self.stderr_path, "ab") as out:
            self.proc = subprocess.Popen([BIN, f"-config={self.config_path}"], cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)  # Ctrl-C reaches only us

    def kill9(self):
        self.proc.kill()  # SIGKILL
        self.proc.wait()

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Only ever signals our own child."""
        if not self.running:
            return
        self.resume()  # a stopped process does not act on SIGTERM until it is continued
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"node {self.id} did not stop within {STOP_TIMEOUT} s of SIGTERM: SIGKILL")
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines=15):
        """The last lines of the node's stdout/stderr (the log lines, and panics)."""
        try:
            with open(self.stderr_path, errors="replace") as f:
                text = f.read().splitlines()[-lines:]
        except OSError:
            return f"--- node {self.id}: no output"
        return "\n".join([f"--- last lines of {self.stderr_path}"] + [ANSI.sub("", line) for line in text])


class Cluster:
    def __init__(self, work, base_port, raft_base_port, rtt_ms=KILL_RTT_MS):
        raft_ports = [raft_base_port + i for i in range(len(NODE_IDS))]
        self.nodes = {n: Node(n, work, base_port + n - 1, raft_ports, rtt_ms) for n in NODE_IDS}
        self.bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes.values())
        self.expected_down = set()
        self._admin = admin_client(self.bootstrap)

    def admin(self):
        return self._admin

    def check_processes(self):
        """Raises SetupError if a node that should run has exited (crash, refused config).
        A node stopped by SIGSTOP has not exited: it counts as running."""
        for node in self.nodes.values():
            if node.id not in self.expected_down and node.proc is not None and not node.running:
                raise SetupError(f"node {node.id} exited with status {node.proc.returncode}\n{node.tail()}")

    def metadata(self, timeout=5):
        return self.admin().list_topics(topic=TOPIC, timeout=timeout)

    def partitions(self, timeout=5):
        """The topic's PartitionMetadata by partition id, or None if the topic is not known."""
        topic = self.metadata(timeout).topics.get(TOPIC)
        if topic is None or topic.error is not None:
            return None
        return topic.partitions

    def answers(self, node_id):
        """(brokers, controller id) as this node itself reports them in Metadata, or None if it
        does not answer. Raw protocol: an AdminClient would route the request to any broker."""
        try:
            return probe_metadata(self.nodes[node_id].port)
        except (OSError, struct.error):
            return None

    def topic_answers(self, node_id):
        """(brokers, controller id, {partition: (leader, replicas, isr)} or None) for the topic
        as this node itself reports them, or None if it does not answer."""
        try:
            return probe_topic_metadata(self.nodes[node_id].port, TOPIC)
        except (OSError, struct.error):
            return None

    def start_all(self):
        for node in self.nodes.values():
            node.start()

        def agreed():
            views = [self.answers(n) for n in NODE_IDS]
            if None in views:
                return None
            controllers = {controller for _, controller in views}
            if all(brokers == set(NODE_IDS) for brokers, _ in views) and len(controllers) == 1 \
                    and controllers <= set(NODE_IDS):
                return controllers.pop()
            return None

        controller = wait_for(agreed, STARTUP_TIMEOUT, interval=0.5, check=self.check_processes)
        if controller is None:
            raise SetupError(f"the nodes did not agree on 3 brokers and a controller within {STARTUP_TIMEOUT} s\n"
                             + "\n".join(node.tail(5) for node in self.nodes.values()))
        return controller

    def stop_all(self):
        for node in self.nodes.values():
            node.resume()  # never leave a node stopped (it would ignore SIGTERM meanwhile)
        for node in self.nodes.values():
            if node.running:
                node.proc.terminate()
        for node in self.nodes.values():
            node.stop()


# ---- the producer --------------------------------------------------------------------------


class Watch:
    """Per kill: the first acknowledgement of a record produced after the kill, per partition."""

    def __init__(self, kill_seq):
        self.kill_seq = kill_seq  # records with a higher seq were produced after the kill
        self.first_ack = {}       # partition -> monotonic time


class ChaosProducer(threading.Thread):
    """Produces b"<seq>" to partition seq % P at `rate` records/s until stopped."""

    def __init__(self, bootstrap, partitions, rate):
        super().__init__(name="chaos-producer", daemon=True)
        self.partitions = partitions
        self.rate = rate
        self.config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "log_level": QUIET,
            "error_cb": self._on_error,
        }
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.abort = False            # stop without flushing (error path)
        self.next_seq = 0             # seqs below this were handed to the client
        self.acked = {}               # seq -> (partition, offset)
        self.ack_count = 0
        self.failed = Counter()       # error name -> failed deliveries
        self.client_errors = Counter()
        self.fatal = None             # a fatal producer error ends production
        self.crash = None             # an exception in this thread
        self.unfinished = None        # records still queued after the final flush
        self.watches = []

    # delivery reports and errors run on this thread, inside poll()/flush()
    def _on_delivery(self, err, msg):
        now = time.monotonic()
        seq = int(msg.value())
        with self.lock:
            if err is not None:
                self.failed[err.name()] += 1
                return
            partition = msg.partition()
            self.acked[seq] = (partition, msg.offset())
            self.ack_count += 1
            for w in self.watches:
                if seq > w.kill_seq and partition not in w.first_ack:
                    w.first_ack[partition] = now

    def _on_error(self, err):
        with self.lock:
            self.client_errors[err.name()] += 1
            if err.fatal() and self.fatal is None:
                self.fatal = str(err)

    def watch(self):
        with self.lock:
            w = Watch(self.next_seq - 1)
            self.watches.append(w)
            return w

    def unwatch(self, w):
        with self.lock:
            self.watches.remove(w)

    def run(self):
        try:
            self._produce()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.crash = e

    def _produce(self):
        producer = Producer(self.config)
        started = time.monotonic()
        seq = 0
        while not self.stopping.is_set() and self.fatal is None:
            due = int((time.monotonic() - started) * self.rate)
            if due - seq > self.rate:
                # More than a second behind (the queue was full): do not burst to catch up.
                started += (due - seq - self.rate) / self.rate
                due = seq + self.rate
            while seq < due and not self.stopping.is_set():
                try:
                    producer.produce(TOPIC, value=b"%d" % seq, partition=seq % self.partitions,
                                     on_delivery=self._on_delivery)
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.05)
                    break
                except KafkaException as e:
                    if e.args and e.args[0].fatal():
                        with self.lock:
                            self.fatal = self.fatal or str(e)
                        break
                    raise
                seq += 1
                with self.lock:
                    self.next_seq = seq
            producer.poll(0)
            time.sleep(0.002)
        if self.abort:
            producer.purge()
            producer.flush(1)
            return
        self.unfinished = producer.flush(FLUSH_TIMEOUT)

    def stop(self, abort=False, timeout=FLUSH_TIMEOUT + 30):
        self.abort = abort
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def check(self):
        if self.crash is not None:
            raise SetupError(f"the producer thread failed: {self.crash!r}")


# ---- verification --------------------------------------------------------------------------


def read_back(bootstrap, partitions, unreadable=None):
    """Reads every partition from the beginning to its high watermark. Returns
    (records [(partition, offset, value bytes)], problems [str]). A partition whose watermarks
    cannot be had raises SetupError, or, given a list `unreadable`, is appended to it, reported
    in problems and not read (pause mode: a cluster that did not come back)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-verify-{os.getpid()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": True, "log_level": QUIET})
    problems = []
    try:
        high = {}
        for p in range(partitions):
            marks = None
            for _ in range(5):
                try:
                    marks = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)
                    break
                except KafkaException as e:
                    log(f"watermarks of partition {p}: {e}; retrying")
                    time.sleep(1)
            if marks is None and unreadable is not None:
                unreadable.append(p)
                problems.append(f"partition {p} could not be read: no watermarks (no leader?)")
                high[p] = 0
                continue
            if marks is None:
                raise SetupError(f"could not get the watermarks of partition {p}")
            low, high[p] = marks
            if low != 0:
                problems.append(f"partition {p} starts at offset {low}, not 0")
        log("high watermarks: " + ", ".join(f"p{p}={'?' if p in (unreadable or ()) else h}"
                                            for p, h in high.items()))
        pending = {p for p in range(partitions) if high[p] > 0}
        position = {p: 0 for p in range(partitions)}
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in pending])
        records = []
        errors = Counter()
        deadline = time.monotonic() + VERIFY_TIMEOUT
        while pending and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=1):
                p = m.partition()
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        if m.offset() >= high.get(p, 0):
                            pending.discard(p)
                    else:
                        errors[m.error().name()] += 1
                    continue
                if m.offset() >= high[p]:
                    pending.discard(p)
                    continue
                records.append((p, m.offset(), m.value()))
                position[p] = m.offset() + 1
                if position[p] >= high[p]:
                    pending.discard(p)
        for p in sorted(pending):
            problems.append(f"partition {p}: read up to offset {position[p]} of {high[p]} within {VERIFY_TIMEOUT} s")
        if errors:
            log(f"consumer errors while reading back: {dict(errors)}")
        return records, problems
    finally:
        consumer.close()


def check_records(records, acked, partitions):
    """Counts what the promise forbids. `acked` maps seq -> (partition, offset)."""
    times_read = Counter()
    at = {}                 # (partition, offset) -> seq
    last = {}               # partition -> last seq read
    out_of_order = corrupt = misplaced = 0
    for p, offset, value in records:
        try:
            seq = int(value)
        except (TypeError, ValueError):
            corrupt += 1
            continue
        times_read[seq] += 1
        at[(p, offset)] = seq
        if p in last and seq < last[p]:
            out_of_order += 1
        last[p] = seq
        if seq % partitions != p:
            misplaced += 1
    lost = sorted(seq for seq in acked if seq not in times_read)
    mismatched = sorted(seq for seq, where in acked.items() if seq in times_read and at.get(where) != seq)
    return {
        "read": len(records),
        "lost": lost,
        "duplicated": sorted(seq for seq, n in times_read.items() if n > 1),
        "out_of_order": out_of_order,
        "mismatched": mismatched,
        "corrupt": corrupt,
        "misplaced": misplaced,
        "unacked_read": sum(1 for seq in times_read if seq not in acked),
    }


# ---- the scenario --------------------------------------------------------------------------


class Chaos:
    def __init__(self, args, work):
        self.args = args
        self.rng = random.Random(args.seed)
        self.cluster = Cluster(work, args.base_port, args.raft_base_port, args.rtt_ms)
        self.producer = None
        self.failures = []
        self.failovers = []       # seconds, one per killed partition that failed over
        self.follower_stalls = []  # seconds until the first ack on partitions it followed
        self.kills = 0
        self.controller_kills = 0
        self.isr_timeouts = 0
        self.pauses = 0
        self.controller_pauses = 0
        self.last_resume = None    # monotonic time of the last SIGCONT (pause mode)
        self.open_round = None     # (round, victim, SIGSTOP time, partitions it led, Watch)
        self.settle_s = None       # seconds from the last SIGCONT until the cluster settled
        self.unreadable = []       # partitions that could not be read back (pause mode)

    def fail(self, message):
        self.failures.append(message)
        log(f"FAIL {message}")

    def check(self):
        self.cluster.check_processes()
        if self.producer is not None:
            self.producer.check()

    def run(self):
        args = self.args
        controller = self.cluster.start_all()
        log(f"cluster up: brokers on {self.cluster.bootstrap}, controller is node {controller}")
        self.create_topic()
        self.producer = ChaosProducer(self.cluster.bootstrap, args.partitions, args.rate)
        self.producer.start()
        log(f"producing ~{args.rate} records/s (acks=all, idempotent) to {args.partitions} partitions")
        time.sleep(2)
        if args.fault == "pause":
            for r in range(1, args.rounds + 1):
                if self.producer.fatal:
                    break
                if r > 1:
                    self.gap()
                    self.close_round()
                self.pause_round(r)
            self.settle()
            self.close_round()
        else:
            for r in range(1, args.rounds + 1):
                if self.producer.fatal:
                    break
                self.round(r)
            if not self.producer.fatal:
                time.sleep(TAIL_SECONDS)
        self.check()
        log("stopping the producer (flush)")
        self.producer.stop()
        if self.producer.is_alive():
            self.fail(f"the producer did not finish flushing within {FLUSH_TIMEOUT + 30} s")
        self.check()
        if self.producer.fatal:
            # e.g. a new leader that does not know the producer's sequence numbers
            self.fail(f"fatal producer error (production stopped there): {self.producer.fatal}")
        if self.producer.unfinished:
            log(f"{self.producer.unfinished} records were neither acknowledged nor failed after the flush")
        return self.verify()

    def create_topic(self):
        args = self.args
        topic = NewTopic(TOPIC, args.partitions, REPLICATION_FACTOR,
                         config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS)})
        futures = self.cluster.admin().create_topics([topic], operation_timeout=30, request_timeout=30)
        try:
            futures[TOPIC].result(timeout=40)
        except KafkaException as e:
            raise SetupError(f"creating topic {TOPIC} (partitions={args.partitions}, "
                             f"replication_factor={REPLICATION_FACTOR}, min.insync.replicas={MIN_INSYNC_REPLICAS}) "
                             f"failed: {e.args[0]}") from None

        def ready():
            parts = self.cluster.partitions()
            if parts is None or len(parts) != args.partitions:
                return None
            if all(pm.leader in NODE_IDS and len(pm.replicas) == REPLICATION_FACTOR
                   and sorted(pm.isrs) == sorted(pm.replicas) for pm in parts.values()):
                return parts
            return None

        parts = wait_for(ready, TOPIC_TIMEOUT, check=self.check)
        if parts is None:
            raise SetupError(f"topic {TOPIC} has no leader and full ISR on every partition after "
                             f"{TOPIC_TIMEOUT} s: {self.describe()}")
        log(f"topic {TOPIC} created: {self.describe(parts)}")

    def describe(self, parts=None):
        try:
            parts = parts or self.cluster.partitions()
        except KafkaException as e:
            return f"(metadata unavailable: {e})"
        if parts is None:
            return "(topic unknown)"
        return "; ".join(f"p{p} leader={pm.leader} replicas={pm.replicas} isr={pm.isrs}"
                         for p, pm in sorted(parts.items()))

    def round(self, r):
        args = self.args

        def leaders_known():
            md = self.cluster.metadata()
            topic = md.topics.get(TOPIC)
            if topic is None or any(pm.leader not in NODE_IDS for pm in topic.partitions.values()):
                return None
            return md

        md = wait_for(leaders_known, FAILOVER_TIMEOUT, check=self.check)
        if md is None:
            raise SetupError(f"round {r}: some partition has no leader: {self.describe()}")
        parts = md.topics[TOPIC].partitions
        victim = parts[self.rng.randrange(args.partitions)].leader
        led = sorted(p for p, pm in parts.items() if pm.leader == victim)
        is_controller = md.controller_id == victim
        node = self.cluster.nodes[victim]

        self.cluster.expected_down.add(victim)
        kill_time = time.monotonic()
        node.kill9()
        watch = self.producer.watch()  # after the process is gone: later records cannot reach it
        acks_at_kill = self.producer.ack_count
        self.kills += 1
        self.controller_kills += is_controller
        log(f"round {r}/{args.rounds}: kill -9 node {victim} (pid {node.proc.pid}"
            f"{', the controller' if is_controller else ''}), leader of partitions {led}")

        # Producing goes on; wait until every partition it led took a new write, at least --down s.
        while True:
            self.check()
            now = time.monotonic()
            with self.producer.lock:
                done = all(p in watch.first_ack for p in led)
            if (done and now - kill_time >= args.down) or now - kill_time >= FAILOVER_TIMEOUT \
                    or self.producer.fatal:
                break
            time.sleep(0.1)
        with self.producer.lock:
            first_ack = dict(watch.first_ack)
            acks_while_down = self.producer.ack_count - acks_at_kill
        self.producer.unwatch(watch)
        down = time.monotonic() - kill_time
        for p in led:
            if p in first_ack:
                seconds = first_ack[p] - kill_time
                self.failovers.append(seconds)
                log(f"  failover: partition {p} first ack after {seconds:.2f} s")
            else:
                self.fail(f"round {r}: no acks=all write to partition {p} was acknowledged in the "
                          f"{down:.0f} s node {victim} was down")
        # Partitions where it was a follower: acks=all waits for it until it leaves the ISR.
        for p in sorted(p for p, pm in parts.items() if p not in led and victim in pm.isrs):
            if p in first_ack:
                seconds = first_ack[p] - kill_time
                self.follower_stalls.append(seconds)
                log(f"  follower: partition {p} first ack after {seconds:.2f} s")
            else:
                self.follower_stalls.append(down)
                log(f"  WARNING partition {p} (node {victim} was a follower in its ISR) had no ack in the "
                    f"{down:.1f} s node {victim} was down")
        if acks_while_down == 0:
            self.fail(f"round {r}: no record at all was acknowledged while node {victim} was down")

        node.start()
        self.cluster.expected_down.discard(victim)
        restart_time = time.monotonic()
        log(f"  node {victim} restarted after {down:.1f} s down ({acks_while_down} acks meanwhile)")

        def back_in_isr():
            if self.cluster.answers(victim) is None:  # the node itself serves again
                return False
            md = self.cluster.metadata()
            topic = md.topics.get(TOPIC)
            if victim not in md.brokers or topic is None:
                return False
            return all(victim in pm.isrs for pm in topic.partitions.values() if victim in pm.replicas)

        if wait_for(back_in_isr, ISR_TIMEOUT, interval=0.5, check=self.check):
            log(f"  node {victim} back in the ISR of its partitions after {time.monotonic() - restart_time:.1f} s")
        else:
            self.isr_timeouts += 1
            log(f"  WARNING node {victim} is not back in every ISR after {ISR_TIMEOUT} s: {self.describe()}")

    def sleep(self, seconds):
        """Sleeps while checking the nodes and the producer."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def views(self):
        """{node id: (brokers, controller, partitions) or None} as each node itself reports."""
        return {n: self.cluster.topic_answers(n) for n in NODE_IDS}

    def describe_views(self, views):
        lines = []
        for n, view in views.items():
            if view is None:
                lines.append(f"  node {n} does not answer Metadata")
                continue
            brokers, controller, parts = view
            state = f"  node {n} says: brokers {sorted(brokers)}, controller {controller}"
            if parts is None:
                state += f", topic {TOPIC} unknown or in error"
            else:
                state += "".join(f"; p{p} leader={leader} replicas={replicas} isr={isr}"
                                 for p, (leader, replicas, isr) in sorted(parts.items()))
            lines.append(state)
        return "\n".join(lines)

    def diagnose(self, views):
        """One line: what keeps the cluster from being settled, as the nodes report it."""
        answering = {n: v for n, v in views.items() if v is not None}
        problems = []
        silent = sorted(set(views) - set(answering))
        if silent:
            problems.append(f"nodes {silent} do not answer")
        missing = sorted(set().union(*(set(NODE_IDS) - brokers for brokers, _, _ in answering.values())))
        if missing:
            problems.append(f"brokers {missing} left out (fenced)")
        controllers = sorted({c for _, c, _ in answering.values()})
        if len(controllers) != 1 or controllers[0] not in NODE_IDS:
            problems.append(f"no agreed controller (named: {controllers})")
        elif controllers[0] in missing:
            problems.append(f"the controller, node {controllers[0]}, is itself fenced")
        leaderless = sorted({p for _, _, parts in answering.values() for p, (leader, _, _) in (parts or {}).items()
                             if leader not in NODE_IDS})
        if leaderless:
            problems.append(f"partitions {leaderless} without a leader")
        if any(parts is None for _, _, parts in answering.values()):
            problems.append(f"topic {TOPIC} unknown to some node")
        return "; ".join(problems) or "settled only just now"

    def gap(self):
        seconds = self.args.gap if self.args.gap is not None else self.rng.uniform(2, 5)
        log(f"  next round in {seconds:.1f} s (not waiting for the ISR to recover)")
        self.sleep(seconds)

    def pause_round(self, r):
        """Odd rounds SIGSTOP a partition leader, even rounds the controller; SIGCONT after
        --pause seconds. Does not wait for the cluster to recover."""
        args = self.args
        views = self.views()
        answering = [v for v in views.values() if v is not None]
        controllers = Counter(c for _, c, _ in answering if c in NODE_IDS)
        controller = controllers.most_common(1)[0][0] if controllers else None
        # The partitions as the controller reports them (else as the first node that answers).
        parts = next((v[2] for n, v in views.items() if v is not None and n == controller and v[2]), None) \
            or next((v[2] for v in answering if v[2]), None) or {}
        if r % 2 == 1:
            led = [p for p, (leader, _, _) in sorted(parts.items()) if leader in NODE_IDS]
            choice = [p for p in led if parts[p][0] != controller] or led
            if choice:
                victim = parts[self.rng.choice(choice)][0]
            else:
                victim = self.rng.choice([n for n in NODE_IDS if n != controller])
                log(f"  no partition has a leader right now: node {victim} at random")
        elif controller is not None:
            victim = controller
        else:
            victim = self.rng.choice(NODE_IDS)
            log(f"  no node names a controller right now: node {victim} at random")
        led = sorted(p for p, (leader, _, _) in parts.items() if leader == victim)
        is_controller = victim == controller
        node = self.cluster.nodes[victim]
        role = ", ".join(([] if not is_controller else ["the controller"])
                         + ([f"leader of partitions {led}"] if led else [])) or "leader of no partition"

        stop_time = time.monotonic()
        node.pause()
        try:
            watch = self.producer.watch()
            self.open_round = (r, victim, stop_time, led, watch)
            acks_at_stop = self.producer.ack_count
            self.pauses += 1
            self.controller_pauses += is_controller
            log(f"round {r}/{args.rounds}: SIGSTOP node {victim} (pid {node.proc.pid}, {role})")
            self.sleep(args.pause - (time.monotonic() - stop_time))
        finally:
            node.resume()
        self.last_resume = time.monotonic()
        stopped = self.last_resume - stop_time
        with self.producer.lock:
            acks_while_stopped = self.producer.ack_count - acks_at_stop
        log(f"  SIGCONT node {victim} after {stopped:.1f} s ({acks_while_stopped} acks meanwhile)")

    def close_round(self):
        """Before the next SIGSTOP (or after the settle check): logs when a record produced
        after this round's SIGSTOP was first acknowledged on each partition the victim led
        (failover_s; with an idempotent producer usually only once the victim answers again,
        its unanswered requests must be resolved first). A missing ack is not a failure here."""
        if self.open_round is None:
            return
        r, victim, stop_time, led, watch = self.open_round
        self.open_round = None
        with self.producer.lock:
            first_ack = dict(watch.first_ack)
        self.producer.unwatch(watch)
        firsts = []
        for p in led:
            if p in first_ack:
                self.failovers.append(first_ack[p] - stop_time)
                firsts.append(f"p{p} after {first_ack[p] - stop_time:.2f} s")
            else:
                firsts.append(f"p{p} none within {time.monotonic() - stop_time:.1f} s")
        if firsts:
            log(f"  round {r}: first ack after the SIGSTOP on the partitions node {victim} led: {', '.join(firsts)}")

    def settle(self):
        """After the last SIGCONT: within --settle s every node answers Metadata with all three
        brokers and one controller, and every partition has a leader; then a record produced
        after that check (so after the last SIGCONT) is acknowledged on every partition within
        the same --settle s (at least WRITES_MIN_WAIT s after the check). Records acknowledged
        right after the SIGCONT do not count: a leader can still take writes for a moment and
        then lose its partitions when the controller fences it."""
        args = self.args
        since = self.last_resume if self.last_resume is not None else time.monotonic()
        deadline = since + args.settle
        last = {}

        def settled():
            views = self.views()
            last.clear()
            last.update(views)
            if any(v is None for v in views.values()):
                return False
            controllers = {c for _, c, _ in views.values()}
            return all(brokers == set(NODE_IDS) for brokers, _, _ in views.values()) \
                and len(controllers) == 1 and controllers <= set(NODE_IDS) \
                and all(parts is not None and len(parts) == args.partitions
                        and all(leader in NODE_IDS for leader, _, _ in parts.values())
                        for _, _, parts in views.values())

        ok = wait_for(settled, max(0.0, deadline - time.monotonic()), interval=0.5, check=self.check)
        if ok:
            self.settle_s = time.monotonic() - since
            _, controller, parts = last[NODE_IDS[0]]
            leaders = " ".join(f"p{p}={leader}" for p, (leader, _, _) in sorted(parts.items()))
            log(f"settled after {self.settle_s:.1f} s: every node lists brokers {list(NODE_IDS)} and "
                f"controller {controller}; leaders {leaders}")
        else:
            self.fail(f"the cluster did not settle within {args.settle:g} s of the last SIGCONT: "
                      f"{self.diagnose(last)}\n"
                      f"{self.describe_views(last)}\n  AdminClient metadata: {self.describe()}")

        watch = self.producer.watch()  # records produced from now on
        from_s = time.monotonic() - since
        deadline = max(deadline, time.monotonic() + WRITES_MIN_WAIT)
        while True:
            self.check()
            with self.producer.lock:
                done = all(p in watch.first_ack for p in range(args.partitions))
            if done or time.monotonic() >= deadline or self.producer.fatal:
                break
            time.sleep(0.1)
        with self.producer.lock:
            first_ack = dict(watch.first_ack)
        self.producer.unwatch(watch)
        missing = [p for p in range(args.partitions) if p not in first_ack]
        acked = ", ".join(f"p{p} {first_ack[p] - since:.2f} s" for p in sorted(first_ack))
        if missing:
            self.fail(f"no record produced from {from_s:.1f} s after the last SIGCONT on was acknowledged on "
                      f"partitions {missing} by {time.monotonic() - since:.1f} s after it "
                      f"(first acks: {acked or 'none'})")
        else:
            log(f"writes work on every partition: records produced from {from_s:.1f} s after the last SIGCONT "
                f"on were first acknowledged at {acked}")

    def verify(self):
        args = self.args
        log("reading every partition back")
        records, problems = read_back(self.cluster.bootstrap, args.partitions,
                                      self.unreadable if args.fault == "pause" else None)
        for problem in problems:
            self.fail(problem)
        with self.producer.lock:
            acked = dict(self.producer.acked)
            failed = sum(self.producer.failed.values())
            failed_by = dict(self.producer.failed)
            client_errors = dict(self.producer.client_errors)
        v = check_records(records, acked, args.partitions)
        if v["lost"]:
            examples = ", ".join(f"{s}@p{acked[s][0]}/o{acked[s][1]}" for s in v["lost"][:10])
            unread = sum(1 for s in v["lost"] if acked[s][0] in self.unreadable)
            of_them = f", {unread} of them on partitions {self.unreadable} that could not be read" \
                if self.unreadable else ""
            self.fail(f"{len(v['lost'])} acknowledged records were not read back (seq@partition/offset: {examples}"
                      f"{of_them})")
        if v["duplicated"]:
            self.fail(f"{len(v['duplicated'])} records were read more than once (seqs {v['duplicated'][:10]})")
        if v["out_of_order"]:
            self.fail(f"{v['out_of_order']} records were read after a record produced later on the same partition")
        if v["mismatched"]:
            examples = ", ".join(f"{s}@p{acked[s][0]}/o{acked[s][1]}" for s in v["mismatched"][:10])
            self.fail(f"{len(v['mismatched'])} acknowledged (partition, offset) hold another record ({examples})")
        if v["corrupt"] or v["misplaced"]:
            self.fail(f"{v['corrupt']} records with an unreadable value, {v['misplaced']} on the wrong partition")
        if failed_by:
            log(f"failed deliveries by error: {failed_by}")
        if client_errors:
            log(f"producer client errors (error_cb): {client_errors}")
        if args.fault == "pause":
            log(f"details: controller_pauses={self.controller_pauses} mismatched={len(v['mismatched'])} "
                f"corrupt={v['corrupt']} misplaced={v['misplaced']} unacked_read={v['unacked_read']} "
                f"unfinished={self.producer.unfinished or 0} unreadable_partitions={self.unreadable}")
        else:
            log(f"details: controller_kills={self.controller_kills} mismatched={len(v['mismatched'])} "
                f"corrupt={v['corrupt']} misplaced={v['misplaced']} unacked_read={v['unacked_read']} "
                f"unfinished={self.producer.unfinished or 0} isr_timeouts={self.isr_timeouts} "
                f"follower_stall_s max={max(self.follower_stalls, default=0):.2f}")
        if self.failovers:
            failover = f"median={statistics.median(self.failovers):.2f} max={max(self.failovers):.2f}"
        else:
            failover = "median=n/a max=n/a"
        if args.fault == "pause":
            faults = f"pauses={self.pauses}"
            settle = f" settle_s={self.settle_s:.1f}" if self.settle_s is not None else " settle_s=n/a"
        else:
            faults, settle = f"kills={self.kills}", ""
        print(f"chaos: rounds={args.rounds} {faults} acked={len(acked)} read={v['read']} "
              f"lost={len(v['lost'])} duplicated={len(v['duplicated'])} out_of_order={v['out_of_order']} "
              f"failed_deliveries={failed} failover_s {failover}{settle}", flush=True)
        return not self.failures


# ---- entry point ---------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fault", choices=("kill", "pause"), default="kill",
                        help="kill: kill -9 a partition leader and restart it (default); pause: SIGSTOP a "
                             "partition leader or the controller (alternately) for --pause s, then SIGCONT")
    parser.add_argument("--rounds", type=int, default=3,
                        help="leader kills or pauses (default 3; the long run uses 12)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the topic (default 3)")
    parser.add_argument("--rate", type=int, default=2000, help="records/s to produce (default 2000)")
    parser.add_argument("--down", type=float, default=4.0,
                        help="seconds a killed node stays down at least (default 4; kill mode)")
    parser.add_argument("--pause", type=float, default=8.0,
                        help="seconds a node stays SIGSTOPped (default 8, longer than the 3 s broker "
                             "session timeout of rtt_ms 100; pause mode)")
    parser.add_argument("--gap", type=float, default=None,
                        help="seconds from a SIGCONT to the next SIGSTOP (default random 2-5 from --seed; "
                             "pause mode)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds after the last SIGCONT for every node to list 3 brokers and one "
                             "controller, every partition to have a leader and writes to resume "
                             "(default 30; pause mode)")
    parser.add_argument("--rtt-ms", type=int, default=None,
                        help=f"Raft rtt_ms of the nodes (default {KILL_RTT_MS} in kill mode, {PAUSE_RTT_MS} "
                             f"in pause mode as configs/broker-cluster-node1.json)")
    parser.add_argument("--base-port", type=int, default=19092, help="Kafka port of node 1 (default 19092)")
    parser.add_argument("--raft-base-port", type=int, default=18001, help="Raft port of node 1 (default 18001)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the choice of victims")
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    parser.add_argument("--keep", action="store_true", help="keep the work directory after a passing run")
    parser.add_argument("--timeout", type=int, default=None,
                        help="watchdog in seconds (default max(900, 300 + 120 * rounds); pause mode "
                             "300 + rounds * (pause + gap + 47) + 2 * (settle - 30), i.e. 300 + 60 * rounds "
                             "with the defaults)")
    args = parser.parse_args()
    if args.rounds < 0 or not 1 <= args.partitions <= 16 or args.rate < 1:
        parser.error("need --rounds >= 0, 1 <= --partitions <= 16 and --rate >= 1")
    if args.pause <= 0 or (args.gap is not None and args.gap < 0) or args.settle <= 0 \
            or (args.rtt_ms is not None and not 1 <= args.rtt_ms <= 60000):
        parser.error("need --pause > 0, --gap >= 0, --settle > 0 and 1 <= --rtt-ms <= 60000")
    if args.rtt_ms is None:
        args.rtt_ms = PAUSE_RTT_MS if args.fault == "pause" else KILL_RTT_MS
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    if args.timeout is None and args.fault == "pause":
        gap = args.gap if args.gap is not None else 5
        args.timeout = int(300 + args.rounds * (args.pause + gap + 47) + 2 * max(0, args.settle - 30))
    elif args.timeout is None:
        args.timeout = max(900, 300 + 120 * args.rounds)
    return args


def check_ports_free(ports):
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # as the broker binds (Rust sets SO_REUSEADDR): TIME_WAIT of a previous run is fine
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise SetupError(f"port {port} is in use (another chaos run? choose --base-port/--raft-base-port)") \
                    from None


def main():
    args = parse_args()

    def on_signal(signum, _frame):
        raise Aborted(f"interrupted by {signal.Signals(signum).name}", 130)

    def on_alarm(_signum, _frame):
        raise Aborted(f"watchdog: the run took longer than {args.timeout} s", 124)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.timeout)

    work = os.path.join(ROOT, "target", "chaos", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    chaos = None
    passed = False
    code = 2
    try:
        if not args.no_build:
            log("cargo build --release")
            if subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT).returncode != 0:
                raise SetupError("cargo build --release failed")
        if not os.access(BIN, os.X_OK):
            raise SetupError(f"{BIN} does not exist; build it or drop --no-build")
        check_ports_free([args.base_port + i for i in range(len(NODE_IDS))]
                         + [args.raft_base_port + i for i in range(len(NODE_IDS))])
        os.makedirs(work)
        mode = ""
        if args.fault == "pause":
            gap = f"{args.gap:g}" if args.gap is not None else "2-5"
            mode = f" fault=pause pause={args.pause:g} gap={gap} settle={args.settle:g} rtt_ms={args.rtt_ms}"
        elif args.rtt_ms != KILL_RTT_MS:
            mode = f" rtt_ms={args.rtt_ms}"
        log(f"work dir {work}; rounds={args.rounds} partitions={args.partitions} rate={args.rate} "
            f"seed={args.seed}{mode}")
        chaos = Chaos(args, work)
        passed = chaos.run()
        code = 0 if passed else 1
    except SetupError as e:
        log(f"FAIL could not run the scenario: {e}")
    except Aborted as e:
        log(f"FAIL {e}")
        code = e.code
    except Exception:  # noqa: BLE001 - a bug in this script: show it, still clean up
        traceback.print_exc()
        log("FAIL unexpected error")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if chaos is not None:
            if chaos.producer is not None and chaos.producer.is_alive():
                chaos.producer.stop(abort=True, timeout=10)
            chaos.cluster.stop_all()
        if passed and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif os.path.isdir(work):
            log(f"logs and configs kept in {work}")
    print("chaos: PASS" if passed else "chaos: FAIL", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
