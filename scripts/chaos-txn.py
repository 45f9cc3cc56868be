#!/usr/bin/env python3
"""Chaos test of transactions: committed transactions survive kill -9 of coordinators and leaders.

The promise under test: on a three-node cluster (replication factor 3, min.insync.replicas 2) a
transactional producer that commits and aborts at random, and sends consumer offsets in its
transactions, keeps going while the transaction coordinator, the group coordinator and partition
leaders are killed -9 and restarted; afterwards a read_committed consumer reads every record of
every committed transaction exactly once, in order, and no record of an aborted one; the group's
committed offset is the one the last committed transaction sent.

What it does:
  1. starts a private three-node cluster in target/chaos-txn/<timestamp>/ (this broker, built
     unless --no-build; or with --reference Apache Kafka 4.1.1 from scripts/kafka-reference.sh's
     jars: three broker+controller JVMs, 512 MiB heap each, transaction.state.log replication
     factor 3, min.isr 2);
  2. creates topic `txn-chaos` (--partitions P, replication factor 3, min.insync.replicas 2) and
     `txn-chaos-in` (1 partition: the offsets the transactions commit for group
     `txn-chaos-group`);
  3. a Java client producer (compat-tests/java TxnChaosProducer; librdkafka 2.16's
     send_offsets_to_transaction can hang for good once the group coordinator's broker leaves the
     metadata, librdkafka issue 5511) runs transactions with one transactional.id: each has 5-40
     records ("t<txn>-<i>", partition (txn + i) % P) and sends the offset <txn> of txn-chaos-in/0
     for the group (sendOffsetsToTransaction, the metadata of a group without members);
     --abort-ratio of them (default 0.3) are aborted on purpose. Errors are handled as
     KafkaProducer documents: TimeoutException -> the same call again, fatal (fenced, out of order
     sequence, ...) -> a new producer with the same transactional.id (initTransactions fences the
     old one), others -> abortTransaction. A transaction whose commit failed fatally or kept timing
     out is "uncertain": it may have committed; the check only requires it to be all or nothing;
  4. for each round: kill -9, in turn, the transaction coordinator of the transactional.id
     (FindCoordinator key type 1, asked of the nodes themselves), the leader of a random data
     partition (not the coordinator when there is a choice), the group coordinator; wait until a
     transaction commits after the kill (a failure if none within 60 s), at least --down s, then
     restart the node and wait until it is back in the ISR of the data partitions (resume_s: from
     the kill to the first commit of a transaction that began after it);
  5. stops the producer after its current transaction, waits until every data partition's last
     stable offset reaches its high watermark (no transaction left open: a failure after 90 s),
     reads everything read_committed and read_uncommitted, and counts.

The last line before the verdict is `chaos-txn: rounds=.. kills=.. (coordinator=.. leader=..
group=..) txns=.. committed=.. aborted=.. uncertain=.. read=.. committed_lost=.. aborted_read=..
duplicated=.. out_of_order=.. torn=.. foreign=.. offsets=ok|<why> resume_s median=.. max=..`;
committed_lost, aborted_read, duplicated, out_of_order, torn (an uncertain transaction partly
visible) and foreign (a record no transaction wrote) must all be 0. Exit status: 0 pass, 1 a check
failed, 2 the scenario could not run, 124 watchdog, 130 Ctrl-C / SIGTERM.

Run it with scripts/chaos-txn.sh (creates the Python venv with confluent-kafka):
  scripts/chaos-txn.sh                   # 3 rounds (one of each victim), ~1-2 minutes
  scripts/chaos-txn.sh --rounds 12       # the long run
  scripts/chaos-txn.sh --reference       # the same against Apache Kafka (checks the script)
  scripts/chaos-txn.sh --no-build --keep --rounds 6 --partitions 6 --seed 7
  BROKER_BIN=/path/to/broker scripts/chaos-txn.sh   # another build (no cargo build then)
"""

import argparse
import json
import os
import random
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos as base  # noqa: E402 - scripts/chaos.py: the node runner, probes, helpers

from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import NewTopic  # noqa: E402

ROOT = base.ROOT
TOPIC = "txn-chaos"
IN_TOPIC = "txn-chaos-in"
GROUP = "txn-chaos-group"
TID = "txn-chaos-producer"
NODE_IDS = base.NODE_IDS
QUIET = base.QUIET
log = base.log
SetupError = base.SetupError
Aborted = base.Aborted
wait_for = base.wait_for

FAILOVER_TIMEOUT = 60     # a commit after each kill
ISR_TIMEOUT = 90          # the restarted node back in every ISR (Kafka's log recovery is slower)
SETTLE_TIMEOUT = 90       # last stable offset = high watermark at the end
OP_TIMEOUT = 30           # a transactional call
TXN_TIMEOUT_MS = 60000
VERIFY_TIMEOUT = 120
TAIL_SECONDS = 3

base.TOPIC = TOPIC  # the node runner's metadata helpers look at this topic
# the broker binary (scripts/chaos.py's Node starts base.BIN): BROKER_BIN, else cargo's
# CARGO_TARGET_DIR/release/broker when that is set, else target/release/broker
base.BIN = os.environ.get("BROKER_BIN") or (
    os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "broker") if os.environ.get("CARGO_TARGET_DIR") else base.BIN)


def find_coordinator(port, key, key_type):
    """FindCoordinator v1 sent to exactly this port: (error code, coordinator node id)."""
    k = key.encode()
    request = struct.pack(">hhih", 10, 1, 7, 9) + b"chaos-txn" + struct.pack(">h", len(k)) + k \
        + struct.pack(">b", key_type)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.settimeout(3)
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
    at = 4 + 4  # correlation id, throttle time
    (error, msg_len) = struct.unpack_from(">hh", data, at)
    at += 4 + max(msg_len, 0)
    (node_id,) = struct.unpack_from(">i", data, at)
    return error, node_id


# ---- clusters ------------------------------------------------------------------------------


class OurCluster:
    """Three nodes of this broker (scripts/chaos.py's Node), configs in the work directory."""

    def __init__(self, work, base_port, raft_base_port, rtt_ms):
        raft_ports = [raft_base_port + i for i in range(len(NODE_IDS))]
        self.nodes = {}
        for n in NODE_IDS:
            node = base.Node(n, work, base_port + n - 1, raft_ports, rtt_ms)
            with open(node.config_path) as f:
                config = json.load(f)
            # __transaction_state and __consumer_offsets take the broker's defaults (50
            # partitions): chaos.py's cap of 16 partitions per topic is for its own topic
            config.pop("max_topic_partitions", None)
            config["group_initial_rebalance_delay"] = "0s"
            with open(node.config_path, "w") as f:
                json.dump(config, f, indent=2)
            self.nodes[n] = node
        self.bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes.values())
        self.expected_down = set()
        self.admin = base.admin_client(self.bootstrap)

    def check_processes(self):
        for node in self.nodes.values():
            if node.id not in self.expected_down and node.proc is not None and not node.running:
                raise SetupError(f"node {node.id} exited with status {node.proc.returncode}\n{node.tail()}")

    def start_all(self):
        for node in self.nodes.values():
            node.start()
        self.wait_all_up()

    def wait_all_up(self):
        def up():
            for n in NODE_IDS:
                try:
                    brokers, _ = base.probe_metadata(self.nodes[n].port)
                except (OSError, struct.error):
                    return False
                if brokers != set(NODE_IDS):
                    return False
            return True

        if not wait_for(up, base.STARTUP_TIMEOUT * 2, interval=0.5, check=self.check_processes):
            raise SetupError("the nodes did not all list 3 brokers within "
                             f"{base.STARTUP_TIMEOUT * 2} s\n" + "\n".join(n.tail(5) for n in self.nodes.values()))

    def stop_all(self):
        for node in self.nodes.values():
            if node.running:
                node.proc.terminate()
        for node in self.nodes.values():
            node.stop()


class KafkaNode:
    """One Apache Kafka 4.1.1 broker+controller JVM (the reference), started from the jars
    scripts/kafka-reference.sh caches; same interface as scripts/chaos.py's Node."""

    def __init__(self, node_id, work, port, cport, voters, classpath, repo_ref_dir):
        self.id = node_id
        self.port = port
        self.dir = os.path.join(work, f"kafka-node{node_id}")
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "server.properties")
        self.stderr_path = os.path.join(work, f"node{node_id}.log")
        self.classpath = classpath
        self.ref_dir = repo_ref_dir
        self.proc = None
        with open(self.config_path, "w") as f:
            f.write(f"""process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.dir}/logs
metadata.log.dir={self.dir}/metadata
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
""")

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def format(self, cluster_id):
        with open(self.stderr_path, "ab") as out:
            rc = subprocess.run(["java", "-Xmx256m", f"-Dlog4j2.configurationFile={self.ref_dir}/tools-log4j2.properties",
                                 "-cp", self.classpath, "kafka.tools.StorageTool", "format",
                                 "--cluster-id", cluster_id, "--config", self.config_path],
                                stdout=out, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise SetupError(f"kafka.tools.StorageTool format failed for node {self.id}\n{self.tail()}")

    def start(self):
        with open(self.stderr_path, "ab") as out:
            self.proc = subprocess.Popen(
                ["java", "-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.ref_dir}/log4j2.properties",
                 f"-Dkafka.logs.dir={self.dir}", "-cp", self.classpath, "kafka.Kafka", self.config_path],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if not self.running:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines=15):
        try:
            with open(self.stderr_path, errors="replace") as f:
                text = f.read().splitlines()[-lines:]
        except OSError:
            return f"--- node {self.id}: no output"
        return "\n".join([f"--- last lines of {self.stderr_path}"] + text)


class KafkaCluster(OurCluster):
    def __init__(self, work, base_port):  # noqa: super().__init__ is not wanted
        ref = os.path.join(ROOT, "scripts", "kafka-reference.sh")
        out = subprocess.run([ref, "classpath"], capture_output=True, text=True)
        if out.returncode != 0:
            raise SetupError(f"scripts/kafka-reference.sh classpath failed: {out.stderr.strip()[-500:]}")
        classpath = out.stdout.strip().splitlines()[-1]
        ref_dir = os.path.join(ROOT, "compat-tests", "kafka-reference")
        voters = ",".join(f"{n}@127.0.0.1:{base_port + 100 + n - 1}" for n in NODE_IDS)
        self.nodes = {n: KafkaNode(n, work, base_port + n - 1, base_port + 100 + n - 1, voters, classpath, ref_dir)
                      for n in NODE_IDS}
        cluster_id = base64_id()
        for node in self.nodes.values():
            node.format(cluster_id)
        self.bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes.values())
        self.expected_down = set()
        self.admin = base.admin_client(self.bootstrap)


def base64_id():
    import base64
    while True:
        s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not s.startswith("-"):   # StorageTool would take it for an option
            return s


# ---- the transactional producer --------------------------------------------------------------


class Txn:
    def __init__(self, n):
        self.n = n
        self.status = "open"      # committed | aborted | uncertain
        self.records = []         # (partition, offset, value) acknowledged
        self.values = []          # every value produced (acknowledged or not)
        self.end = None           # monotonic time the outcome was known
        self.begin = None         # monotonic time it began


class TxnWorker(threading.Thread):
    """Runs compat-tests/java's TxnChaosProducer (the Java client: librdkafka 2.16's
    send_offsets_to_transaction can hang for good once the group coordinator's broker has left
    the metadata, librdkafka issue 5511) and reads its report lines: one TXN line per ended
    transaction, STAGE lines (what it is doing), ERROR and RESTART lines (counted)."""

    def __init__(self, bootstrap, partitions, abort_ratio, seed, log_path):
        super().__init__(name="txn-worker", daemon=True)
        self.lock = threading.Lock()
        self.txns = []
        self.errors = Counter()
        self.restarts = 0
        self.crash = None
        self.stage = "starting"
        self.done = False
        self.begun = {}   # transaction -> monotonic time its beginTransaction was reported
        self.log_path = log_path
        jar = os.path.join(ROOT, "compat-tests", "java", "target", "compat-java.jar")
        self.cmd = ["java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", jar, "compat.TxnChaosProducer",
                    bootstrap, TOPIC, str(partitions), IN_TOPIC, GROUP, TID, str(abort_ratio), str(seed)]
        self.proc = None

    def run(self):
        try:
            with open(self.log_path, "ab") as err:
                self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                             start_new_session=True, text=True, bufsize=1)
            for line in self.proc.stdout:
                self.line(line.rstrip("\n"))
            rc = self.proc.wait()
            if not self.done:
                self.crash = f"TxnChaosProducer exited with status {rc} before DONE (stderr: {self.log_path})"
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.crash = f"{e!r}\n{traceback.format_exc()}"

    def line(self, line):
        kind, _, rest = line.partition(" ")
        with self.lock:
            if kind == "TXN":
                d = json.loads(rest)
                t = Txn(d["n"])
                t.status = d["status"]
                t.values = d["values"]
                t.records = [tuple(r) for r in d["acked"]]
                t.end = time.monotonic()
                t.begin = self.begun.pop(t.n, None)
                self.txns.append(t)
            elif kind == "STAGE":
                self.stage = f"{rest} (since {time.monotonic() - base.START:.1f}s)"
                if rest.startswith("beginTransaction t"):
                    self.begun[int(rest.split(" t")[1])] = time.monotonic()
            elif kind == "ERROR":
                where, _, what = rest.partition(" ")
                self.errors[f"{where} {what.split(':')[0]}"] += 1
            elif kind == "RESTART":
                self.restarts += 1
                log(f"  producer: a new producer with the same transactional.id ({rest[:200]})")
            elif kind == "DONE":
                self.done = True

    def stop(self, timeout=FAILOVER_TIMEOUT * 3):
        """Asks it to end its current transaction and exit; waits."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
            except OSError:
                pass
        self.join(timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def commits_after(self, t):
        """The end times of the committed transactions that began after t."""
        with self.lock:
            return [x.end for x in self.txns if x.status == "committed" and x.begin is not None and x.begin > t]


# ---- verification --------------------------------------------------------------------------


def read_all(bootstrap, partitions, isolation):
    """Every record of TOPIC up to the end offsets as this isolation level sees them:
    [(partition, offset, value)], ends."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"txn-chaos-verify-{os.getpid()}-{isolation}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True, "log_level": QUIET})
    try:
        ends = {}
        for p in range(partitions):
            _, ends[p] = c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)
        pending = {p for p in range(partitions) if ends[p] > 0}
        c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(partitions)])
        records = []
        deadline = time.monotonic() + VERIFY_TIMEOUT
        while pending and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=1):
                p = m.partition()
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(p)
                    continue
                if m.offset() < ends[p]:
                    records.append((p, m.offset(), m.value().decode(errors="replace")))
                if m.offset() + 1 >= ends[p]:
                    pending.discard(p)
        if pending:
            raise SetupError(f"reading {isolation}: partitions {sorted(pending)} not read to {ends} "
                             f"within {VERIFY_TIMEOUT} s")
        return records, ends
    finally:
        c.close()


def last_stable_gaps(bootstrap, partitions):
    """{partition: (last stable offset, high watermark)} where they differ."""
    rc = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-chaos-lso", "isolation.level": "read_committed",
                   "log_level": QUIET})
    ru = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-chaos-hw", "isolation.level": "read_uncommitted",
                   "log_level": QUIET})
    try:
        gaps = {}
        for p in range(partitions):
            tp = TopicPartition(TOPIC, p)
            lso = rc.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            hw = ru.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            if lso != hw:
                gaps[p] = (lso, hw)
        return gaps
    finally:
        rc.close()
        ru.close()


def check(records, txns, partitions):
    by_value = {}
    for t in txns:
        for i, v in enumerate(t.values):
            by_value[v] = (t, i)
    seen = Counter(v for _, _, v in records)
    out = {"read": len(records), "committed_lost": 0, "aborted_read": 0, "duplicated": 0,
           "out_of_order": 0, "torn": 0, "foreign": 0, "mismatched": 0}
    examples = {k: [] for k in out}

    def note(kind, what):
        out[kind] += 1
        if len(examples[kind]) < 5:
            examples[kind].append(what)

    for v, n in seen.items():
        if v not in by_value:
            note("foreign", v)
        elif n > 1:
            note("duplicated", f"{v} x{n}")
    at = {(p, o): v for p, o, v in records}
    last = {}
    for p, o, v in records:
        if v in by_value:
            t, i = by_value[v]
            key = (t.n, i)
            if p in last and key < last[p]:
                note("out_of_order", f"{v} at p{p}@{o} after t{last[p][0]}-{last[p][1]}")
            last[p] = key
            if t.status == "aborted":
                note("aborted_read", f"{v} at p{p}@{o}")
    for t in txns:
        visible = [v for v in t.values if v in seen]
        if t.status == "committed":
            for p, o, v in t.records:
                if v not in seen:
                    note("committed_lost", f"{v} (acknowledged at p{p}@{o})")
                elif at.get((p, o)) != v:
                    note("mismatched", f"{v} acknowledged at p{p}@{o}, which holds {at.get((p, o))}")
            if len(t.records) != len(t.values):
                note("committed_lost", f"t{t.n}: committed with {len(t.records)} of {len(t.values)} records "
                                       "acknowledged")
        elif t.status == "uncertain" and visible and len(visible) != len(t.records):
            note("torn", f"t{t.n}: {len(visible)} of {len(t.records)} acknowledged records visible")
    return out, examples


# ---- the scenario --------------------------------------------------------------------------


class TxnChaos:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        if args.reference:
            self.cluster = KafkaCluster(work, args.base_port)
        else:
            self.cluster = OurCluster(work, args.base_port, args.raft_base_port, args.rtt_ms)
        self.worker = None
        self.failures = []
        self.kills = Counter()
        self.resume = []

    def fail(self, message):
        self.failures.append(message)
        log(f"FAIL {message}")

    def check(self):
        self.cluster.check_processes()
        if self.worker is not None and self.worker.crash:
            raise SetupError(f"the producer failed: {self.worker.crash}")

    def running_ports(self):
        return [n.port for n in self.cluster.nodes.values() if n.running and n.id not in self.cluster.expected_down]

    def coordinator(self, key, key_type):
        """The coordinator node id as the live nodes answer (first one without an error)."""
        def ask():
            for port in self.running_ports():
                try:
                    error, node = find_coordinator(port, key, key_type)
                except (OSError, struct.error):
                    continue
                if error == 0 and node in NODE_IDS:
                    return node
            return None
        return wait_for(ask, FAILOVER_TIMEOUT, interval=0.5, check=self.check)

    def partitions(self):
        md = self.cluster.admin.list_topics(topic=TOPIC, timeout=5)
        t = md.topics.get(TOPIC)
        return None if t is None or t.error is not None else t.partitions

    def create_topics(self):
        a = self.cluster.admin
        topics = [NewTopic(TOPIC, self.args.partitions, 3, config={"min.insync.replicas": "2"}),
                  NewTopic(IN_TOPIC, 1, 3, config={"min.insync.replicas": "2"})]
        for name, f in a.create_topics(topics, operation_timeout=30, request_timeout=30).items():
            try:
                f.result(timeout=40)
            except KafkaException as e:
                raise SetupError(f"creating {name}: {e.args[0]}") from None

        def ready():
            md = a.list_topics(timeout=5)
            for name, n in ((TOPIC, self.args.partitions), (IN_TOPIC, 1)):
                t = md.topics.get(name)
                if t is None or t.error is not None or len(t.partitions) != n:
                    return False
                if not all(pm.leader in NODE_IDS and sorted(pm.isrs) == sorted(pm.replicas) and len(pm.replicas) == 3
                           for pm in t.partitions.values()):
                    return False
            return True

        if not wait_for(ready, base.TOPIC_TIMEOUT, check=self.check):
            raise SetupError(f"{TOPIC} / {IN_TOPIC} without leaders and full ISRs after {base.TOPIC_TIMEOUT} s")

    def run(self):
        args = self.args
        self.cluster.start_all()
        log(f"cluster up ({'Apache Kafka' if args.reference else 'this broker'}): {self.cluster.bootstrap}")
        self.create_topics()
        log(f"topics {TOPIC} ({args.partitions} partitions) and {IN_TOPIC}, replication factor 3, min.insync.replicas 2")
        build = subprocess.run([os.path.join(ROOT, "compat-tests", "java", "scenario.sh"), "--build"],
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise SetupError(f"compat-tests/java/scenario.sh --build failed: {build.stderr.strip()[-500:]}")
        self.worker = TxnWorker(self.cluster.bootstrap, args.partitions, args.abort_ratio, self.rng.randrange(1 << 30),
                                os.path.join(self.work, "producer.log"))
        self.worker.start()
        if not wait_for(lambda: self.worker.commits_after(0), FAILOVER_TIMEOUT, check=self.check):
            raise SetupError(f"no transaction committed within {FAILOVER_TIMEOUT} s of the start: "
                             f"{dict(self.worker.errors)}")
        log(f"transactions running (abort ratio {args.abort_ratio})")
        time.sleep(2)
        kinds = ["coordinator", "leader", "group"]
        for r in range(1, args.rounds + 1):
            self.round(r, kinds[(r - 1) % 3])
        time.sleep(TAIL_SECONDS)
        self.check()
        log("stopping the producer after its current transaction")
        self.worker.stop()
        if self.worker.is_alive():
            self.fail(f"the producer did not stop within 180 s: at {self.worker.stage}")
            self.worker.kill()
        self.check()
        return self.verify()

    def round(self, r, kind):
        args = self.args
        if kind == "coordinator":
            victim = self.coordinator(TID, 1)
        elif kind == "group":
            victim = self.coordinator(GROUP, 0)
        else:
            parts = wait_for(lambda: (lambda ps: ps if ps and all(pm.leader in NODE_IDS for pm in ps.values())
                                      else None)(self.partitions()), FAILOVER_TIMEOUT, check=self.check)
            if parts is None:
                raise SetupError(f"round {r}: a partition of {TOPIC} has no leader")
            coord = self.coordinator(TID, 1)
            leaders = sorted({pm.leader for pm in parts.values()})
            victim = self.rng.choice([n for n in leaders if n != coord] or leaders)
        if victim is None:
            raise SetupError(f"round {r}: no node named the {kind} coordinator within {FAILOVER_TIMEOUT} s")
        node = self.cluster.nodes[victim]
        role = {"coordinator": f"the transaction coordinator of {TID}", "group": f"the group coordinator of {GROUP}",
                "leader": f"a leader of {TOPIC}"}[kind]
        self.cluster.expected_down.add(victim)
        kill_time = time.monotonic()
        node.kill9()
        self.kills[kind] += 1
        log(f"round {r}/{args.rounds}: kill -9 node {victim} ({role})")
        while True:
            self.check()
            commits = self.worker.commits_after(kill_time)
            now = time.monotonic()
            if (commits and now - kill_time >= args.down) or now - kill_time >= FAILOVER_TIMEOUT:
                break
            time.sleep(0.1)
        if commits:
            self.resume.append(min(commits) - kill_time)
            log(f"  first commit of a transaction begun after the kill: {min(commits) - kill_time:.2f} s after it; "
                f"{len(commits)} such commits while down")
        else:
            self.fail(f"round {r}: no transaction committed in the {FAILOVER_TIMEOUT} s after killing node {victim} "
                      f"({role}); the producer is at {self.worker.stage}; errors so far {dict(self.worker.errors)}")
        node.start()
        self.cluster.expected_down.discard(victim)
        t0 = time.monotonic()

        def back():
            try:
                base.probe_metadata(node.port)
            except (OSError, struct.error):
                return False
            ps = self.partitions()
            return ps is not None and all(victim in pm.isrs for pm in ps.values() if victim in pm.replicas)

        if wait_for(back, ISR_TIMEOUT, interval=0.5, check=self.check):
            log(f"  node {victim} restarted, back in the ISRs after {time.monotonic() - t0:.1f} s")
        else:
            log(f"  WARNING node {victim} not back in every ISR of {TOPIC} after {ISR_TIMEOUT} s")

    def verify(self):
        args = self.args
        bootstrap = self.cluster.bootstrap
        t0 = time.monotonic()
        gaps = wait_for(lambda: not last_stable_gaps(bootstrap, args.partitions), SETTLE_TIMEOUT, interval=1,
                        check=self.check)
        if not gaps:
            self.fail(f"a transaction stayed open: last stable offset < high watermark {SETTLE_TIMEOUT} s after the "
                      f"producer stopped: {last_stable_gaps(bootstrap, args.partitions)}")
        else:
            log(f"every last stable offset at its high watermark after {time.monotonic() - t0:.1f} s")
        records, ends = read_all(bootstrap, args.partitions, "read_committed")
        everything, _ = read_all(bootstrap, args.partitions, "read_uncommitted")
        with self.worker.lock:
            txns = list(self.worker.txns)
        counts, examples = check(records, txns, args.partitions)
        for kind in ("committed_lost", "aborted_read", "duplicated", "out_of_order", "torn", "foreign", "mismatched"):
            if counts[kind]:
                self.fail(f"{kind}={counts[kind]}: {'; '.join(examples[kind])}")
        # the group's offset: the last committed transaction's (or an uncertain one after it)
        status = Counter(t.status for t in txns)
        offsets = self.check_offsets(txns)
        if offsets != "ok":
            self.fail(f"offsets: {offsets}")
        aborted_values = {v for t in txns if t.status == "aborted" for _, _, v in t.records}
        aborted_in_log = sum(1 for _, _, v in everything if v in aborted_values)
        log(f"read_uncommitted: {len(everything)} records, {aborted_in_log} of them from aborted transactions; "
            f"read_committed: {len(records)} to {ends}")
        if self.worker.errors:
            log(f"producer errors (handled): {dict(self.worker.errors)}; producer restarts {self.worker.restarts}")
        with self.worker.lock:
            last = self.worker.stage
        if not self.worker.done:
            self.fail(f"the producer did not report DONE (last stage: {last})")
        resume = (f"median={statistics.median(self.resume):.2f} max={max(self.resume):.2f}" if self.resume
                  else "median=n/a max=n/a")
        print(f"chaos-txn: target={'kafka' if args.reference else 'ours'} rounds={args.rounds} "
              f"kills={sum(self.kills.values())} (coordinator={self.kills['coordinator']} leader={self.kills['leader']} "
              f"group={self.kills['group']}) txns={len(txns)} committed={status['committed']} "
              f"aborted={status['aborted']} uncertain={status['uncertain']} read={counts['read']} "
              f"committed_lost={counts['committed_lost']} aborted_read={counts['aborted_read']} "
              f"duplicated={counts['duplicated']} out_of_order={counts['out_of_order']} torn={counts['torn']} "
              f"foreign={counts['foreign']} offsets={offsets.split(':')[0] if offsets != 'ok' else 'ok'} "
              f"resume_s {resume}", flush=True)
        if status["committed"] == 0 or status["aborted"] == 0:
            self.fail(f"the run needs committed and aborted transactions: {dict(status)}")
        return not self.failures

    def check_offsets(self, txns):
        c = Consumer({"bootstrap.servers": self.cluster.bootstrap, "group.id": GROUP,
                      "isolation.level": "read_committed", "enable.auto.commit": False, "log_level": QUIET})
        try:
            got = None
            deadline = time.monotonic() + 30
            while True:
                try:
                    tp = c.committed([TopicPartition(IN_TOPIC, 0)], timeout=10)[0]
                    if tp.error is None:
                        got = tp.offset
                        break
                    why = str(tp.error)
                except KafkaException as e:
                    why = str(e)
                if time.monotonic() > deadline:
                    return f"OffsetFetch failed: {why}"
                time.sleep(0.5)
        finally:
            c.close()
        committed = [t.n for t in txns if t.status == "committed"]
        last = max(committed, default=None)
        allowed = {last} | {t.n for t in txns if t.status == "uncertain" and (last is None or t.n > last)}
        if last is None:
            allowed.add(-1001)  # no commit at all: no offset
        if got not in allowed:
            return f"wrong: the group's committed offset is {got}, expected {sorted(x for x in allowed if x is not None)} " \
                   f"(the last committed transaction{' or a later uncertain one' if len(allowed) > 1 else ''})"
        return "ok"


# ---- entry point ---------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="kills (default 3: one of each victim; long run 12)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the data topic (default 3)")
    parser.add_argument("--abort-ratio", type=float, default=0.3, help="share of transactions aborted on purpose")
    parser.add_argument("--down", type=float, default=4.0, help="seconds a killed node stays down at least (default 4)")
    parser.add_argument("--rtt-ms", type=int, default=base.KILL_RTT_MS, help="Raft rtt_ms of this broker's nodes")
    parser.add_argument("--base-port", type=int, default=None,
                        help="client port of node 1 (default 19192; 39192 with --reference, controllers on +100)")
    parser.add_argument("--raft-base-port", type=int, default=18101, help="Raft port of node 1 (default 18101)")
    parser.add_argument("--reference", action="store_true", help="run against a three-node Apache Kafka cluster")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    parser.add_argument("--keep", action="store_true", help="keep the work directory after a passing run")
    parser.add_argument("--timeout", type=int, default=None, help="watchdog seconds (default 420 + 150 * rounds)")
    args = parser.parse_args()
    if args.rounds < 0 or not 1 <= args.partitions <= 16 or not 0 <= args.abort_ratio < 1:
        parser.error("need --rounds >= 0, 1 <= --partitions <= 16, 0 <= --abort-ratio < 1")
    if args.base_port is None:
        args.base_port = 39192 if args.reference else 19192
    if args.seed is None:
        args.seed = random.randrange(1 << 31)
    if args.timeout is None:
        args.timeout = 420 + 150 * args.rounds
    return args


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
    work = os.path.join(ROOT, "target", "chaos-txn", time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}")
    run = None
    passed = False
    code = 2
    try:
        if not args.reference and not args.no_build and not os.environ.get("BROKER_BIN"):
            log("cargo build --release")
            if subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT).returncode != 0:
                raise SetupError("cargo build --release failed")
        if not args.reference and not os.access(base.BIN, os.X_OK):
            raise SetupError(f"{base.BIN} does not exist; build it or drop --no-build")
        ports = [args.base_port + i for i in range(3)]
        ports += [args.base_port + 100 + i for i in range(3)] if args.reference \
            else [args.raft_base_port + i for i in range(3)]
        base.check_ports_free(ports)
        os.makedirs(work)
        log(f"work dir {work}; rounds={args.rounds} partitions={args.partitions} abort_ratio={args.abort_ratio} "
            f"seed={args.seed}{' reference=Apache Kafka' if args.reference else ''}")
        run = TxnChaos(args, work)
        passed = run.run()
        code = 0 if passed else 1
    except SetupError as e:
        log(f"FAIL could not run the scenario: {e}")
    except Aborted as e:
        log(f"FAIL {e}")
        code = e.code
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("FAIL unexpected error")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if run is not None:
            if run.worker is not None:
                run.worker.kill()
            run.cluster.stop_all()
        if passed and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif os.path.isdir(work):
            log(f"logs and configs kept in {work}")
    print("chaos-txn: PASS" if passed else "chaos-txn: FAIL", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
