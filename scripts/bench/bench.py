#!/usr/bin/env python3
"""Side-by-side benchmark of this broker against Apache Kafka (benchmarks.md).

Run through scripts/bench.sh, which builds the broker, the librdkafka generator
(scripts/bench/rdkgen.c) and resolves the Kafka jars first. Standard library only.

Both brokers run side by side for W1-W5 (same machine, same client, same data volume),
each on its own fresh data directory; runs are interleaved pair by pair, the order inside
a pair alternating (this, kafka / kafka, this / ...). W7 starts fresh instances.
Every figure is T0 (Kafka defaults against this broker's default flush policy "never").

Raw output goes to target/bench/runs/<id>/, one JSON line per measured run to
results.jsonl there, and the summary to summary.json / summary.md there and in
target/bench/.
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
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(REPO, "scripts", "kafka-reference.sh")
REF_DIR = os.path.join(REPO, "compat-tests", "kafka-reference")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1024 ** 3
MIB = 1024 ** 2
# ports other sessions and tools use: never ours
AVOID_PORTS = {9092, 9093, 19092, 19093, 29192, 29193, 29292, 29293, 29392, 29393}

PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
E2E_LATENCY = "org.apache.kafka.tools.EndToEndLatency"

# Volumes and repetitions. Quick: the whole run in under five minutes on 2 cores.
PROFILES = {
    "quick": dict(pairs=3, w1_java=100_000, w1_rdk=200_000, w2_java=4 * 50_000,
                  w2_rdk=600_000, w3_secs=5, w3_e2e_msgs=500, w5_bytes=1 * GIB,
                  w5_cold=False, w7_idle_s=2, w7_restart=False, warm_java=150_000,
                  warm_rdk=1_000_000, client_timeout=60),
    "full": dict(pairs=5, w1_java=500_000, w1_rdk=1_000_000, w2_java=4 * 250_000,
                 w2_rdk=2_000_000, w3_secs=10, w3_e2e_msgs=4000, w5_bytes=3 * GIB,
                 w5_cold=True, w7_idle_s=5, w7_restart=True, warm_java=300_000,
                 warm_rdk=1_000_000, client_timeout=300),
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc helpers

def proc_cpu_ticks(pid):
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_write_bytes(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pid):
    """Reset VmHWM (peak RSS) to the current RSS: proc(5), clear_refs value 5."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def system_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_pid(pid, timeout=30):
    """SIGTERM one process we started, wait, SIGKILL after timeout."""
    if not pid or not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return
        except ChildProcessError:
            pass
        if not alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(100):
        if not alive(pid):
            return
        time.sleep(0.05)


def port_free(p):
    for port in (p,):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
        c = socket.socket()
        c.settimeout(0.2)
        try:
            if c.connect_ex(("127.0.0.1", port)) == 0:
                return False
        finally:
            c.close()
    return True


def pick_port(taken):
    """A free port p with p+1 free too (Kafka's controller listener), by probing."""
    for _ in range(500):
        p = random.randint(30000, 59000)
        if {p, p + 1} & (AVOID_PORTS | taken):
            continue
        if port_free(p) and port_free(p + 1):
            taken.update({p, p + 1})
            return p
    raise RuntimeError("no free port pair found")


def tcp_ready(port):
    c = socket.socket()
    c.settimeout(0.2)
    try:
        return c.connect_ex(("127.0.0.1", port)) == 0
    finally:
        c.close()


# ------------------------------------------------------------------ brokers

class Broker:
    name = "?"
    pid = None
    port = None

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pid and not alive(self.pid):
                raise RuntimeError(f"{self.name} broker exited during startup")
            if tcp_ready(self.port):
                if shutil.which("kcat") is None:
                    return
                r = subprocess.run(["kcat", "-L", "-b", self.bootstrap(), "-m", "3"],
                                   capture_output=True, text=True)
                if f"at 127.0.0.1:{self.port}" in r.stdout:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} broker did not answer on {self.bootstrap()}")


class ThisBroker(Broker):
    name = "this"

    def __init__(self, ctx, port):
        self.ctx = ctx
        self.port = port
        self.dir = tempfile.mkdtemp(prefix=f"bench-this-{port}-")
        self.data = os.path.join(self.dir, "data")
        self.cfg = os.path.join(self.dir, "broker.json")
        cfg = {"data_dir": self.data, "server": {"host": "127.0.0.1", "port": str(port)}}
        if ctx.this_group_delay_knob:
            # as kafka-reference.sh sets group.initial.rebalance.delay.ms=0 for Kafka
            cfg["group_initial_rebalance_delay"] = "0s"
        with open(self.cfg, "w") as f:
            json.dump(cfg, f)
        self.logf = os.path.join(ctx.raw, f"this-broker-{port}.log")
        self.env = dict(os.environ)
        self.env.setdefault("RUST_LOG", "info")
        self.env["TOKIO_WORKER_THREADS"] = str(ctx.broker_threads)

    def command(self):
        return self.ctx.pin_broker + [self.ctx.broker_bin, "--config", self.cfg]

    def prepare(self):
        pass

    def start(self):
        with open(self.logf, "ab") as lf:
            p = subprocess.Popen(self.command(), stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                                 env=self.env, start_new_session=True)
        self.pid = p.pid
        self.ctx.started.add(self.pid)
        self.wait_ready()
        return self.pid

    def start_command(self):
        """For rdkgen probe: the broker's output appended to its log."""
        return ["sh", "-c", f'exec "$@" >>"{self.logf}" 2>&1 </dev/null', "sh"] + self.command()

    def shutdown(self):
        """SIGTERM, keep the data (for a restart)."""
        stop_pid(self.pid)
        self.pid = None

    def stop(self):
        self.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)

    def adopt(self, pid):
        self.pid = pid
        self.ctx.started.add(pid)

    def topic_files(self, topic):
        out = []
        if os.path.isdir(self.data):
            for d in os.listdir(self.data):
                if d.rsplit("-", 1)[0] == topic:
                    dd = os.path.join(self.data, d)
                    out += [os.path.join(dd, f) for f in os.listdir(dd)]
        return out


class KafkaBroker(Broker):
    """Apache Kafka started and stopped by scripts/kafka-reference.sh (W1-W5)."""
    name = "kafka"

    def __init__(self, ctx, port):
        self.ctx = ctx
        self.port = port
        self.env = dict(os.environ)
        self.env["KAFKA_REF_STATE_DIR"] = ctx.kafka_state
        self.env["KAFKA_REF_LOG"] = os.path.join(ctx.raw, f"kafka-broker-{port}.log")
        self.env.setdefault("KAFKA_HEAP_OPTS", "-Xms1G -Xmx1G")
        self.sd = os.path.join(ctx.kafka_state, str(port))

    def start(self):
        r = subprocess.run(self.ctx.pin_broker + [REF, "start", str(self.port)], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kafka-reference.sh start failed: {r.stderr[-2000:]}")
        self.pid = int(r.stdout.strip().splitlines()[-1])
        self.ctx.started.add(self.pid)
        return self.pid

    def stop(self):
        subprocess.run([REF, "stop", str(self.port)], env=self.env, capture_output=True)
        if self.pid:
            stop_pid(self.pid)
        self.pid = None

    def topic_files(self, topic):
        data = open(os.path.join(self.sd, "datadir")).read().strip()
        logs = os.path.join(data, "logs")
        out = []
        if os.path.isdir(logs):
            for d in os.listdir(logs):
                if d.rsplit("-", 1)[0] == topic:
                    dd = os.path.join(logs, d)
                    out += [os.path.join(dd, f) for f in os.listdir(dd)]
        return out


def kafka_reference_properties(port, cport, data):
    """server.properties exactly as scripts/kafka-reference.sh writes it (read from the
    script's here-document, so the two cannot drift), plus KAFKA_REF_EXTRA_PROPS."""
    text = open(REF).read()
    m = re.search(r'cat > "\$file" <<EOF\n(.*?)\nEOF\n', text, re.S)
    if not m:
        raise RuntimeError("cannot find server.properties in scripts/kafka-reference.sh")
    props = m[1].replace("$cport", str(cport)).replace("$port", str(port)).replace("$data", data)
    extra = os.environ.get("KAFKA_REF_EXTRA_PROPS")
    return props + "\n" + (extra + "\n" if extra else "")


class KafkaW7Broker(Broker):
    """Apache Kafka for W7: the same configuration and JVM command line as
    kafka-reference.sh, but formatted beforehand and launched under rdkgen probe."""
    name = "kafka"

    def __init__(self, ctx, port):
        self.ctx = ctx
        self.port = port
        self.dir = tempfile.mkdtemp(prefix=f"bench-kafka-w7-{port}-")
        self.props = os.path.join(self.dir, "server.properties")
        with open(self.props, "w") as f:
            f.write(kafka_reference_properties(port, port + 1, os.path.join(self.dir, "data")))
        self.logf = os.path.join(ctx.raw, f"kafka-w7-{port}.log")
        self.env = dict(os.environ)
        self.heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms1G -Xmx1G").split()

    def prepare(self):
        import base64
        cid = "-"
        while cid.startswith("-"):   # an id starting with '-' reads as an option
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with open(self.logf, "ab") as lf:
            subprocess.run(self.ctx.pin_broker + [
                "java", "-Xmx256m", f"-Dlog4j2.configurationFile={REF_DIR}/tools-log4j2.properties",
                "-cp", self.ctx.kafka_classpath, "kafka.tools.StorageTool", "format",
                "-t", cid, "-c", self.props], stdout=lf, stderr=lf, check=True)

    def start_command(self):
        java = (["java"] + self.heap + ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                                        "-Djava.awt.headless=true",
                                        f"-Dlog4j2.configurationFile={REF_DIR}/log4j2.properties",
                                        f"-Dkafka.logs.dir={self.dir}",
                                        "-cp", self.ctx.kafka_classpath, "kafka.Kafka", self.props])
        return ["sh", "-c", f'exec "$@" >>"{self.logf}" 2>&1 </dev/null', "sh"] + \
            self.ctx.pin_broker + java

    def adopt(self, pid):
        self.pid = pid
        self.ctx.started.add(pid)

    def shutdown(self):
        stop_pid(self.pid)
        self.pid = None

    def stop(self):
        self.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ context, clients

class Ctx:
    def __init__(self, args):
        self.args = args
        self.prof = dict(PROFILES["quick" if args.quick else "full"])
        if args.pairs:
            self.prof["pairs"] = args.pairs
        self.mode = "quick" if args.quick else "full"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.bench = os.path.join(REPO, "target", "bench")
        self.out = os.path.join(self.bench, "runs", f"{stamp}-{self.mode}")
        self.raw = os.path.join(self.out, "raw")
        os.makedirs(self.raw, exist_ok=True)
        self.results_path = os.path.join(self.out, "results.jsonl")
        self.results = []
        self.started = set()
        self.taken_ports = set()
        self.kafka_state = tempfile.mkdtemp(prefix="bench-kafka-state-")
        self.broker_bin = args.broker_bin
        self.rdkgen = args.rdkgen
        self.kafka_classpath = subprocess.run([REF, "classpath"], capture_output=True,
                                              text=True, check=True).stdout.strip()
        ncpu = len(os.sched_getaffinity(0))
        cpus = sorted(os.sched_getaffinity(0))
        if args.no_pin or ncpu < 2 or not shutil.which("taskset"):
            self.pin_broker, self.pin_client = [], []
            self.broker_threads = ncpu
            self.pinning = "none: brokers and load generators share all cores"
        else:
            half = max(1, ncpu // 2)
            bc, cc = cpus[ncpu - half:], cpus[:ncpu - half]
            self.pin_broker = ["taskset", "-c", ",".join(map(str, bc))]
            self.pin_client = ["taskset", "-c", ",".join(map(str, cc))]
            self.broker_threads = len(bc)
            self.pinning = (f"taskset: brokers on cpu {','.join(map(str, bc))} "
                            f"(this broker: {len(bc)} tokio worker thread(s); Kafka's JVM sees "
                            f"{len(bc)} cpu), load generators on cpu {','.join(map(str, cc))}")
        self.driver_classes = args.driver_classes
        with open(self.broker_bin, "rb") as f:
            self.this_group_delay_knob = b"group_initial_rebalance_delay" in f.read()
        self.java_props = []          # extra producer props for every Java producer
        self.idempotence = "default (enable.idempotence=true)"
        self.seq = 0
        self.errors = []

    def rawfile(self, name):
        self.seq += 1
        return os.path.join(self.raw, f"{self.seq:03d}-{name}")

    def record(self, **kw):
        kw.setdefault("tier", "T0")
        self.results.append(kw)
        with open(self.results_path, "a") as f:
            f.write(json.dumps(kw) + "\n")


def run_clients(ctx, cmds, outs, timeout=None):
    """Run client commands concurrently (pinned to the client cpus); wait for all.
    Returns (wall seconds, client cpu seconds, return codes)."""
    timeout = timeout or ctx.prof["client_timeout"]
    procs = []
    t0 = time.time()
    for cmd, out in zip(cmds, outs):
        with open(out, "ab") as f:
            f.write(("$ " + " ".join(cmd) + "\n").encode())
            f.flush()
            p = subprocess.Popen(ctx.pin_client + cmd, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        procs.append(p)
    cpu = 0.0
    rcs = []
    deadline = t0 + timeout
    for p in procs:
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                cpu += ru.ru_utime + ru.ru_stime
                rcs.append(os.waitstatus_to_exitcode(status))
                p.returncode = rcs[-1]
                break
            if time.time() > deadline:
                log(f"client {p.args[len(ctx.pin_client)]} timed out; killing pid {p.pid}")
                p.kill()
            time.sleep(0.02)
    return time.time() - t0, cpu, rcs


class Driver:
    """One long-lived JVM running Kafka's tools (scripts/bench/BenchDriver.java), pinned to
    the load-generator cpus, shared by both brokers' runs."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.errlog = os.path.join(ctx.raw, "java-driver.log")
        self.proc = None
        self.start()

    def start(self):
        cmd = ctx_java_tool_cmd(self.ctx) + ["BenchDriver"]
        with open(self.errlog, "ab") as err:
            self.proc = subprocess.Popen(self.ctx.pin_client + cmd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        self.ctx.started.add(self.proc.pid)
        line = self._readline(time.time() + 60)
        if line != "READY":
            raise RuntimeError(f"Java driver did not start (see {self.errlog})")

    def _readline(self, deadline):
        import select
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    return None
                return line.strip()
            if self.proc.poll() is not None:
                return None
        return None

    def cpu_ticks(self):
        return proc_cpu_ticks(self.proc.pid)

    def run(self, out_base, jobs, timeout=None):
        """jobs: [(tool, [args])]; tool in pp, cp, e2e. Returns (cpu seconds, exit codes,
        output files)."""
        timeout = timeout or self.ctx.prof["client_timeout"]
        fields = [out_base]
        for k, (tool_name, args) in enumerate(jobs):
            if k:
                fields.append("--next--")
            fields += [tool_name] + [str(a) for a in args]
        outs = [f"{out_base}.{k}" for k in range(len(jobs))]
        for k, (tool_name, args) in enumerate(jobs):
            with open(outs[k], "w") as f:
                f.write(f"$ [BenchDriver] {JAVA_TOOLS[tool_name]} " + " ".join(map(str, args)) + "\n")
        c0 = self.cpu_ticks()
        self.proc.stdin.write("\t".join(fields) + "\n")
        self.proc.stdin.flush()
        line = self._readline(time.time() + timeout)
        if not line or not line.startswith("DONE"):
            log(f"Java driver: no answer within {timeout}s; restarting it")
            stop_pid(self.proc.pid, timeout=5)
            self.start()
            return 0.0, [1] * len(jobs), outs
        cpu = (self.cpu_ticks() - c0) / CLK_TCK
        return cpu, [int(x) for x in line.split()[1:]], outs

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_pid(self.proc.pid)


JAVA_TOOLS = {"pp": PRODUCER_PERF, "cp": CONSUMER_PERF, "e2e": E2E_LATENCY}


def ctx_java_tool_cmd(ctx):
    """The JVM command line of kafka-reference.sh run-tool, plus the driver's classes."""
    return ["java", "-Xmx512m", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={REF_DIR}/tools-log4j2.properties",
            "-cp", f"{ctx.driver_classes}:{ctx.kafka_classpath}"]


def rdk(ctx, *args):
    return [ctx.rdkgen] + [str(a) for a in args]


def create_topic(ctx, broker, topic, partitions):
    create_topics(ctx, broker, [(topic, partitions)])


def create_topics(ctx, broker, topics):
    """CreateTopics, then wait until Metadata shows every partition's leader."""
    spec = ",".join(f"{t}:{p}" for t, p in topics)
    r = subprocess.run(ctx.pin_client + rdk(ctx, "create", "-b", broker.bootstrap(), "-t", spec),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"create topics on {broker.name}: {r.stderr}")


def delete_topic(ctx, broker, topic):
    """Untimed, after a measured run: keeps the disk bounded over a full run."""
    subprocess.run(ctx.pin_client + rdk(ctx, "delete", "-b", broker.bootstrap(), "-t", topic),
                   capture_output=True, text=True)


def topic_plan(ctx, only):
    """Every topic W1-W5 use, created before the warm-up: producing into a topic Kafka
    created a moment ago can meet NOT_LEADER_OR_FOLLOWER, and the idempotent Java producer
    then loops on OUT_OF_ORDER_SEQUENCE_NUMBER (seen here on Kafka 4.1.1)."""
    t = [("bench-idem", 1), ("bench-warm", 16), ("bench-warm-e2e", 1)]
    for i in range(ctx.prof["pairs"]):
        if "W1" in only:
            for tag in ("acks1", "acksall"):
                t.append((f"w1-{tag}-java-{i}", 1))
                if ctx.prof["w1_rdk"]:
                    t.append((f"w1-{tag}-rdk-{i}", 1))
        if only & {"W2", "W3"}:
            t += [(f"w2-java-{i}", 16), (f"w2-rdk-{i}", 16)]
        if "W3" in only:
            t += [(f"w3-java-{i}", 16), (f"w3-librdkafka-{i}", 16), (f"w3-e2e-{i}", 1)]
    if "W5" in only:
        t.append(("w5-catchup", 16))
    return t


class Sampler:
    """Broker-side figures around one measured run."""

    def __init__(self, broker):
        self.b = broker
        self.hwm_reset = reset_hwm(broker.pid)
        self.cpu0 = proc_cpu_ticks(broker.pid)
        self.wb0 = proc_write_bytes(broker.pid)
        self.sys0 = system_busy_ticks()
        self.t0 = time.time()

    def finish(self, client_cpu_s, payload_bytes):
        pid = self.b.pid
        cpu = (proc_cpu_ticks(pid) - self.cpu0) / CLK_TCK
        busy = (system_busy_ticks() - self.sys0) / CLK_TCK
        gib = payload_bytes / GIB if payload_bytes else 0
        m = {
            "broker_cpu_s": round(cpu, 3),
            "client_cpu_s": round(client_cpu_s, 3),
            "broker_peak_rss_mb": round(proc_status_kb(pid, "VmHWM") / 1024, 1),
            "broker_rss_mb": round(proc_status_kb(pid, "VmRSS") / 1024, 1),
            "disk_write_mb": round((proc_write_bytes(pid) - self.wb0) / MIB, 1),
            # CPU used on this machine by processes other than this broker and these clients
            "other_cpu_s": round(max(0.0, busy - cpu - client_cpu_s), 2),
            "wall_s": round(time.time() - self.t0, 3),
        }
        # share of one cpu used during the run: which side was the bottleneck
        m["broker_util"] = round(cpu / m["wall_s"], 2)
        m["client_util"] = round(client_cpu_s / m["wall_s"], 2)
        if gib:
            m["broker_cpu_s_per_gb"] = round(cpu / gib, 3)
            m["client_cpu_s_per_gb"] = round(client_cpu_s / gib, 3)
            m["disk_write_mb_per_gb"] = round(m["disk_write_mb"] / gib, 1)
        return m


# ------------------------------------------------------------------ output parsers

PP_FINAL = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")


def parse_producer_perf(path):
    text = open(path, errors="replace").read()
    m = None
    for m in PP_FINAL.finditer(text):
        pass
    if not m:
        return None
    return {"records": int(m[1]), "records_per_s": float(m[2]), "mb_per_s": float(m[3]),
            "avg_ms": float(m[4]), "max_ms": float(m[5]), "p50_ms": float(m[6]),
            "p95_ms": float(m[7]), "p99_ms": float(m[8]), "p999_ms": float(m[9])}


def parse_consumer_perf(path):
    lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    for i, l in enumerate(lines):
        if l.startswith("start.time"):
            keys = [k.strip() for k in l.split(",")]
            if i + 1 < len(lines):
                vals = [v.strip() for v in lines[i + 1].split(",")]
                if len(vals) == len(keys):
                    return dict(zip(keys, vals))
    return None


def parse_e2e_latency(path):
    text = open(path, errors="replace").read()
    avg = re.search(r"Avg latency: ([\d.]+) ms", text)
    pc = re.search(r"Percentiles: 50th = (\d+), 99th = (\d+), 99\.9th = (\d+)", text)
    if not avg or not pc:
        return None
    return {"avg_ms": float(avg[1]), "p50_ms": float(pc[1]), "p99_ms": float(pc[2]),
            "p999_ms": float(pc[3])}


def parse_json_line(path):
    for line in reversed(open(path, errors="replace").read().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


# ------------------------------------------------------------------ workloads

def pair_orders(ctx, brokers):
    """Pair i runs (this, kafka) for even i and (kafka, this) for odd i."""
    for i in range(ctx.prof["pairs"]):
        yield i, (brokers if i % 2 == 0 else list(reversed(brokers)))


def pp_args(ctx, broker, topic, n, acks=None, throughput=-1):
    props = [f"bootstrap.servers={broker.bootstrap()}"] + ctx.java_props
    if acks is not None:
        props.append(f"acks={acks}")
    return ["--topic", topic, "--num-records", n, "--record-size", 1024,
            "--throughput", throughput, "--producer-props", *props]


def rel(ctx, paths):
    if isinstance(paths, str):
        return os.path.relpath(paths, ctx.out)
    return [os.path.relpath(p, ctx.out) for p in paths]


def check_idempotence(ctx, broker):
    """The Java producer is idempotent by default (InitProducerId). Try it against this
    broker; fall back to enable.idempotence=false for both brokers if it fails."""
    topic = "bench-idem"
    _, rcs, outs = ctx.driver.run(ctx.rawfile("idempotence-check-this"),
                                  [("pp", pp_args(ctx, broker, topic, 5000, acks="all"))], timeout=60)
    res = parse_producer_perf(outs[0])
    text = open(outs[0], errors="replace").read()
    if rcs == [0] and res and res["records"] == 5000 and "Exception" not in text:
        ctx.idempotence = "default (enable.idempotence=true): InitProducerId answered"
    else:
        ctx.java_props = ["enable.idempotence=false"]
        ctx.idempotence = ("enable.idempotence=false for both brokers: the idempotent producer "
                           f"failed against this broker (see {rel(ctx, outs[0])})")
    log(f"Java producer: {ctx.idempotence}")


def warm_up(ctx, brokers):
    """Unmeasured: JIT for Kafka's JVM and for the Java driver, page cache and allocator."""
    for b in brokers:
        run_clients(ctx, [rdk(ctx, "produce", "-b", b.bootstrap(), "-t", "bench-warm",
                              "-n", ctx.prof["warm_rdk"], "-P", 4)],
                    [ctx.rawfile(f"warmup-rdk-{b.name}.txt")])
        ctx.driver.run(ctx.rawfile(f"warmup-java-{b.name}"),
                       [("pp", pp_args(ctx, b, "bench-warm", ctx.prof["warm_java"], acks))
                        for acks in ("1", "all")] +
                       [("e2e", [b.bootstrap(), "bench-warm-e2e", 300, "all", 1024])])
        ctx.driver.run(ctx.rawfile(f"warmup-java-cp-{b.name}"),
                       [("cp", ["--bootstrap-server", b.bootstrap(), "--topic", "bench-warm",
                                "--messages", ctx.prof["warm_java"], "--timeout", 30000,
                                "--group", f"bench-warm-{uuid.uuid4().hex[:8]}"])])


def java_produce_run(ctx, b, workload, variant, i, name, jobs, extra=None):
    """One measured run of Java producers (and an EndToEndLatency job, for W3)."""
    s = Sampler(b)
    cpu, rcs, outs = ctx.driver.run(ctx.rawfile(name), jobs)
    pp = [parse_producer_perf(o) for o, (t, _) in zip(outs, jobs) if t == "pp"]
    e2e = [parse_e2e_latency(o) for o, (t, _) in zip(outs, jobs) if t == "e2e"]
    ok = all(pp) and all(e2e) and all(rc == 0 for rc in rcs)
    m = s.finish(cpu, sum(r["records"] for r in pp if r) * 1024)
    if ok:
        m.update(produce_mb_per_s=round(sum(r["mb_per_s"] for r in pp), 2),
                 produce_records_per_s=round(sum(r["records_per_s"] for r in pp), 1),
                 produce_p50_ms=max(r["p50_ms"] for r in pp),
                 produce_p99_ms=max(r["p99_ms"] for r in pp),
                 produce_p999_ms=max(r["p999_ms"] for r in pp))
        for r in e2e:
            m.update(e2e_avg_ms=r["avg_ms"], e2e_p50_ms=r["p50_ms"], e2e_p99_ms=r["p99_ms"],
                     e2e_p999_ms=r["p999_ms"])
    m.update(extra or {})
    ctx.record(workload=workload, variant=variant, client="java", broker=b.name, pair=i, ok=ok,
               raw=rel(ctx, outs), metrics=m)


def rdk_produce_run(ctx, b, workload, variant, i, name, args, extra=None):
    out = ctx.rawfile(name + ".txt")
    s = Sampler(b)
    _, cpu, rcs = run_clients(ctx, [rdk(ctx, *args)], [out])
    res = parse_json_line(out)
    m = s.finish(cpu, res["bytes"] if res and "bytes" in res else
                 (res["records"] * 1024 if res else 0))
    if res:
        m.update(produce_mb_per_s=res["mb_per_s"], produce_records_per_s=res["records_per_s"],
                 produce_p50_ms=res["lat_ms"]["p50"], produce_p99_ms=res["lat_ms"]["p99"],
                 produce_p999_ms=res["lat_ms"]["p999"])
        if "e2e_ms" in res:
            m.update(e2e_p50_ms=res["e2e_ms"]["p50"], e2e_p99_ms=res["e2e_ms"]["p99"],
                     e2e_p999_ms=res["e2e_ms"]["p999"], e2e_received=res["received"])
    m.update(extra or {})
    ok = bool(res) and rcs == [0] and res.get("errors") == 0
    ctx.record(workload=workload, variant=variant, client="librdkafka", broker=b.name, pair=i,
               ok=ok, raw=rel(ctx, out), metrics=m)


def w1(ctx, brokers):
    for acks in ("1", "all"):
        variant = f"acks={acks}"
        tag = "acks1" if acks == "1" else "acksall"
        for i, order in pair_orders(ctx, brokers):
            for b in order:
                topic = f"w1-{tag}-java-{i}"
                java_produce_run(ctx, b, "W1", variant, i, f"w1-{tag}-java-{b.name}-{i}",
                                 [("pp", pp_args(ctx, b, topic, ctx.prof["w1_java"], acks))])
                delete_topic(ctx, b, topic)
                if ctx.prof["w1_rdk"]:
                    topic = f"w1-{tag}-rdk-{i}"
                    rdk_produce_run(ctx, b, "W1", variant, i, f"w1-{tag}-rdk-{b.name}-{i}",
                                    ["produce", "-b", b.bootstrap(), "-t", topic,
                                     "-n", ctx.prof["w1_rdk"], "-a", acks])
                    delete_topic(ctx, b, topic)
        log(f"W1 {variant} done")


def w2(ctx, brokers):
    per = ctx.prof["w2_java"] // 4
    variant = "16 partitions, 4 producers"
    for i, order in pair_orders(ctx, brokers):
        for b in order:
            topic = f"w2-java-{i}"
            java_produce_run(ctx, b, "W2", variant, i, f"w2-java-{b.name}-{i}",
                             [("pp", pp_args(ctx, b, topic, per)) for _ in range(4)])
            delete_topic(ctx, b, topic)
            topic = f"w2-rdk-{i}"
            rdk_produce_run(ctx, b, "W2", variant, i, f"w2-rdk-{b.name}-{i}",
                            ["produce", "-b", b.bootstrap(), "-t", topic, "-n", ctx.prof["w2_rdk"],
                             "-P", 4])
            delete_topic(ctx, b, topic)
    log("W2 done")


def slower_max_rate(ctx, client):
    """Median W2 records/s of each broker for this client; the smaller one."""
    meds = []
    for name in ("this", "kafka"):
        v = [r["metrics"].get("produce_records_per_s") for r in ctx.results
             if r["workload"] == "W2" and r["client"] == client and r["broker"] == name and r["ok"]]
        v = [x for x in v if x]
        if not v:
            return None
        meds.append(statistics.median(v))
    return min(meds)


def w3(ctx, brokers):
    secs = ctx.prof["w3_secs"]
    for client in ("java", "librdkafka"):
        slower = slower_max_rate(ctx, client)
        if not slower:
            log(f"W3 {client}: no W2 rate, skipped")
            continue
        rate = int(slower * 0.5)
        variant = (f"{rate} records/s (50% of the slower broker's W2), 16 partitions, "
                   "4 producers")
        for i, order in pair_orders(ctx, brokers):
            for b in order:
                topic = f"w3-{client}-{i}"
                if client == "java":
                    # ProducerPerformance at the fixed rate; EndToEndLatency (one record at a
                    # time, its own 1-partition topic) alongside it
                    e2e_topic = f"w3-e2e-{i}"
                    java_produce_run(ctx, b, "W3", variant, i, f"w3-java-{b.name}-{i}",
                                     [("pp", pp_args(ctx, b, topic, rate // 4 * secs,
                                                     throughput=rate // 4)) for _ in range(4)] +
                                     [("e2e", [b.bootstrap(), e2e_topic, ctx.prof["w3_e2e_msgs"],
                                               "all", 1024])],
                                     extra={"rate": rate})
                    delete_topic(ctx, b, e2e_topic)
                else:
                    rdk_produce_run(ctx, b, "W3", variant, i, f"w3-rdk-{b.name}-{i}",
                                    ["e2e", "-b", b.bootstrap(), "-t", topic, "-r", rate, "-d", secs,
                                     "-P", 4],
                                    extra={"rate": rate})
                delete_topic(ctx, b, topic)
        log(f"W3 {client} at {rate} records/s done")


def evict_page_cache(files):
    """Drop these files' pages from the page cache (fsync, then POSIX_FADV_DONTNEED):
    a cold read of one topic without touching the rest of the machine."""
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                os.fsync(fd)
            except OSError:
                pass
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def w5(ctx, brokers):
    topic = "w5-catchup"
    n = ctx.prof["w5_bytes"] // 1024
    for b in brokers:
        out = ctx.rawfile(f"w5-load-{b.name}.txt")
        run_clients(ctx, [rdk(ctx, "produce", "-b", b.bootstrap(), "-t", topic, "-n", n, "-P", 4)], [out])
        res = parse_json_line(out)
        if not res or res["records"] != n:
            raise RuntimeError(f"W5 load on {b.name} failed, see {out}")
    # write the loaded data back now, not during the measured reads
    os.sync()
    time.sleep(1)
    variants = [("hot", False)] + ([("cold", True)] if ctx.prof["w5_cold"] else [])
    for vname, cold in variants:
        variant = f"{n * 1024 / GIB:g} GiB, 16 partitions, from offset 0, {vname} page cache"
        for i, order in pair_orders(ctx, brokers):
            for b in order:
                # Java ConsumerPerformance (a new consumer group per run, earliest offset);
                # the figure is its fetch.MB.sec, which leaves the group join out
                if cold:
                    evict_page_cache(b.topic_files(topic))
                s = Sampler(b)
                cpu, rcs, outs = ctx.driver.run(
                    ctx.rawfile(f"w5-{vname}-java-{b.name}-{i}"),
                    [("cp", ["--bootstrap-server", b.bootstrap(), "--topic", topic, "--messages", n,
                             "--timeout", 30000, "--group", f"bench-{uuid.uuid4().hex[:8]}"])])
                res = parse_consumer_perf(outs[0])
                ok = bool(res) and rcs == [0] and int(res.get("data.consumed.in.nMsg", 0)) >= n
                m = s.finish(cpu, int(res["data.consumed.in.nMsg"]) * 1024 if res else 0)
                if res:
                    m.update(consume_mb_per_s=float(res["fetch.MB.sec"]),
                             consume_mb_per_s_incl_join=float(res["MB.sec"]),
                             rebalance_ms=float(res["rebalance.time.ms"]),
                             consumed_records=int(res["data.consumed.in.nMsg"]))
                ctx.record(workload="W5", variant=variant, client="java", broker=b.name, pair=i,
                           ok=ok, raw=rel(ctx, outs), metrics=m)
                # librdkafka consumer, every partition assigned at offset 0 (no group)
                if cold:
                    evict_page_cache(b.topic_files(topic))
                out = ctx.rawfile(f"w5-{vname}-rdk-{b.name}-{i}.txt")
                s = Sampler(b)
                _, cpu, rcs = run_clients(ctx, [rdk(ctx, "consume", "-b", b.bootstrap(), "-t", topic,
                                                    "-n", n)], [out])
                res = parse_json_line(out)
                m = s.finish(cpu, res["bytes"] if res else 0)
                if res:
                    m.update(consume_mb_per_s=res["mb_per_s"], consumed_records=res["records"])
                ctx.record(workload="W5", variant=variant, client="librdkafka", broker=b.name,
                           pair=i, ok=bool(res) and rcs == [0] and res["records"] >= n,
                           raw=rel(ctx, out), metrics=m)
        log(f"W5 {vname} done")


def probe_start(ctx, broker, topic, tag):
    """Start the broker under rdkgen probe: fork/exec to the first acknowledged produce."""
    out = ctx.rawfile(f"w7-{tag}-{broker.name}.txt")
    cmd = rdk(ctx, "probe", "-b", broker.bootstrap(), "-t", topic, "-T", 120, "--") + broker.start_command()
    with open(out, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        # the broker's output goes to its log (start_command), the probe's to this file
        subprocess.run(ctx.pin_client + cmd, stdout=f, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, env=broker.env, timeout=180)
    res = parse_json_line(out)
    if not res or "pid" not in res:
        raise RuntimeError(f"W7 probe failed on {broker.name}: see {out}")
    broker.adopt(int(res["pid"]))
    if "ms" not in res:
        raise RuntimeError(f"W7 probe failed on {broker.name}: {res.get('error')} (see {out})")
    return res["ms"], out


def w7(ctx):
    restart = ctx.prof["w7_restart"]
    for i in range(ctx.prof["pairs"]):
        kinds = ["this", "kafka"] if i % 2 == 0 else ["kafka", "this"]
        for kind in kinds:
            port = pick_port(ctx.taken_ports)
            b = ThisBroker(ctx, port) if kind == "this" else KafkaW7Broker(ctx, port)
            try:
                b.prepare()        # Kafka: format the fresh data dir (untimed, required by KRaft)
                ms, out1 = probe_start(ctx, b, "w7-first", "fresh")
                raws = [rel(ctx, out1)]
                create_topic(ctx, b, "w7-p100", 100)
                run_clients(ctx, [rdk(ctx, "produce", "-b", b.bootstrap(), "-t", "w7-p100", "-n", 1000)],
                            [ctx.rawfile(f"w7-load-{kind}-{i}.txt")])
                time.sleep(ctx.prof["w7_idle_s"])
                m = {"start_to_first_ack_ms": ms,
                     "idle_rss_mb_100p": round(proc_status_kb(b.pid, "VmRSS") / 1024, 1)}
                if restart:
                    b.shutdown()
                    ms2, out2 = probe_start(ctx, b, "w7-p100", "restart-p100")
                    m["restart_100p_to_first_ack_ms"] = ms2
                    raws.append(rel(ctx, out2))
                ctx.record(workload="W7", variant="fork/exec to first acknowledged produce (acks=all)",
                           client="librdkafka", broker=kind, pair=i, ok=True, raw=raws, metrics=m)
            finally:
                b.stop()
    log("W7 done")


# ------------------------------------------------------------------ summary

# (workload, client, variant prefix or None, metric key in results, summary metric, better, unit, target)
# target: (op, factor): ratio this/kafka must be >= or <= factor.
ROWS = [
    ("W1", "java", "acks=1", "produce_mb_per_s", "produce_mb_per_s_acks1", "higher", "MB/s", (">=", 1.5)),
    ("W1", "java", "acks=1", "produce_p99_ms", "produce_p99_ms_acks1", "lower", "ms", None),
    ("W1", "java", "acks=1", "broker_cpu_s_per_gb", "broker_cpu_s_per_gb_acks1", "lower", "s/GiB", None),
    ("W1", "java", "acks=all", "produce_mb_per_s", "produce_mb_per_s_acksall", "higher", "MB/s", (">=", 1.5)),
    ("W1", "java", "acks=all", "produce_p99_ms", "produce_p99_ms_acksall", "lower", "ms", None),
    ("W1", "java", "acks=all", "broker_cpu_s_per_gb", "broker_cpu_s_per_gb_acksall", "lower", "s/GiB", None),
    ("W1", "librdkafka", "acks=1", "produce_mb_per_s", "produce_mb_per_s_acks1_rdkafka", "higher", "MB/s", (">=", 1.5)),
    ("W1", "librdkafka", "acks=1", "broker_cpu_s_per_gb", "broker_cpu_s_per_gb_acks1_rdkafka", "lower", "s/GiB", None),
    ("W1", "librdkafka", "acks=all", "produce_mb_per_s", "produce_mb_per_s_acksall_rdkafka", "higher", "MB/s", (">=", 1.5)),
    ("W1", "librdkafka", "acks=all", "broker_cpu_s_per_gb", "broker_cpu_s_per_gb_acksall_rdkafka", "lower", "s/GiB", None),
    ("W2", "java", None, "produce_mb_per_s", "produce_mb_per_s", "higher", "MB/s", (">=", 1.5)),
    ("W2", "java", None, "produce_records_per_s", "produce_records_per_s", "higher", "rec/s", None),
    ("W2", "java", None, "broker_peak_rss_mb", "broker_peak_rss_mb", "lower", "MiB", ("<=", 0.1)),
    ("W2", "java", None, "broker_cpu_s_per_gb", "broker_cpu_s_per_gb", "lower", "s/GiB", None),
    ("W2", "java", None, "client_cpu_s_per_gb", "client_cpu_s_per_gb", "lower", "s/GiB", None),
    ("W2", "java", None, "disk_write_mb_per_gb", "disk_write_mb_per_gb", "lower", "MiB/GiB", None),
    ("W2", "librdkafka", None, "produce_mb_per_s", "produce_mb_per_s_rdkafka", "higher", "MB/s", (">=", 1.5)),
    ("W2", "librdkafka", None, "broker_peak_rss_mb", "broker_peak_rss_mb_rdkafka", "lower", "MiB", ("<=", 0.1)),
    ("W2", "librdkafka", None, "broker_cpu_s_per_gb", "broker_cpu_s_per_gb_rdkafka", "lower", "s/GiB", None),
    ("W2", "librdkafka", None, "client_cpu_s_per_gb", "client_cpu_s_per_gb_rdkafka", "lower", "s/GiB", None),
    ("W3", "java", None, "produce_p50_ms", "produce_p50_ms", "lower", "ms", None),
    ("W3", "java", None, "produce_p99_ms", "produce_p99_ms", "lower", "ms", ("<=", 0.5)),
    ("W3", "java", None, "produce_p999_ms", "produce_p999_ms", "lower", "ms", None),
    ("W3", "java", None, "e2e_avg_ms", "e2e_avg_ms", "lower", "ms", None),
    ("W3", "java", None, "e2e_p99_ms", "e2e_p99_ms", "lower", "ms", None),
    ("W3", "java", None, "e2e_p999_ms", "e2e_p999_ms", "lower", "ms", None),
    ("W3", "librdkafka", None, "produce_p50_ms", "produce_p50_ms_rdkafka", "lower", "ms", None),
    ("W3", "librdkafka", None, "produce_p99_ms", "produce_p99_ms_rdkafka", "lower", "ms", ("<=", 0.5)),
    ("W3", "librdkafka", None, "produce_p999_ms", "produce_p999_ms_rdkafka", "lower", "ms", None),
    ("W3", "librdkafka", None, "e2e_p50_ms", "e2e_p50_ms_rdkafka", "lower", "ms", None),
    ("W3", "librdkafka", None, "e2e_p99_ms", "e2e_p99_ms_rdkafka", "lower", "ms", None),
    ("W3", "librdkafka", None, "e2e_p999_ms", "e2e_p999_ms_rdkafka", "lower", "ms", None),
    ("W5", "java", None, "consume_mb_per_s", "consume_mb_per_s", "higher", "MB/s", (">=", 1.5)),
    ("W5", "java", None, "broker_cpu_s_per_gb", "consume_broker_cpu_s_per_gb", "lower", "s/GiB", None),
    ("W5", "librdkafka", None, "consume_mb_per_s", "consume_mb_per_s_rdkafka", "higher", "MB/s", (">=", 1.5)),
    ("W5", "librdkafka", None, "broker_cpu_s_per_gb", "consume_broker_cpu_s_per_gb_rdkafka", "lower", "s/GiB", None),
    ("W7", "librdkafka", None, "start_to_first_ack_ms", "start_to_first_ack_ms", "lower", "ms", ("<=", 0.05)),
    ("W7", "librdkafka", None, "restart_100p_to_first_ack_ms", "restart_100p_to_first_ack_ms", "lower", "ms", ("<=", 0.05)),
    ("W7", "librdkafka", None, "idle_rss_mb_100p", "idle_rss_mb_100p", "lower", "MiB", None),
]


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3f}"


def summarize(ctx_results):
    rows = []
    groups = {}
    for r in ctx_results:
        groups.setdefault((r["workload"], r["client"], r["variant"]), []).append(r)
    for wl, client, vpref, key, name, better, unit, target in ROWS:
        for (gw, gc, gv), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                      "cold" in kv[0][2], kv[0][2])):
            if gw != wl or gc != client or (vpref and not gv.startswith(vpref)):
                continue
            suffix = ""
            if wl == "W5" and "cold" in gv:
                suffix = "_cold"
            by_pair = {}
            for r in rs:
                if r["ok"] and r["metrics"].get(key) is not None:
                    by_pair.setdefault(r["pair"], {})[r["broker"]] = r["metrics"][key]
            this = [p["this"] for p in by_pair.values() if "this" in p]
            kafka = [p["kafka"] for p in by_pair.values() if "kafka" in p]
            if not this and not kafka:
                continue
            ratios = [p["this"] / p["kafka"] for p in by_pair.values()
                      if "this" in p and "kafka" in p and p["kafka"]]
            mname = name
            if suffix:
                mname = name.replace("consume_mb_per_s", "consume_mb_per_s" + suffix).replace(
                    "consume_broker_cpu", "consume" + suffix + "_broker_cpu")
            row = {
                "workload": wl, "metric": mname,
                "this": round(statistics.median(this), 3) if this else None,
                "kafka": round(statistics.median(kafka), 3) if kafka else None,
                "ratio": round(statistics.median(ratios), 4) if ratios else None,
                "better": better,
                "ratio_min": round(min(ratios), 4) if ratios else None,
                "ratio_max": round(max(ratios), 4) if ratios else None,
                "pairs": len(ratios), "unit": unit, "client": client, "variant": gv, "tier": "T0",
            }
            if target:
                op, f = target
                row["target"] = f"{op} {f}"
                row["target_met"] = (None if row["ratio"] is None else
                                     (row["ratio"] >= f if op == ">=" else row["ratio"] <= f))
            rows.append(row)
    return rows


def markdown(rows, meta):
    out = []
    out.append(f"### Benchmark: this broker vs Apache Kafka {meta['kafka_version']} ({meta['mode']})")
    out.append("")
    out.append(f"- machine: {meta['machine']}")
    out.append(f"- pinning: {meta['pinning']}")
    out.append(f"- this broker: {meta.get('this', '?')}")
    out.append(f"- Kafka: {meta['kafka']}")
    out.append(f"- load generators: Kafka's ProducerPerformance / ConsumerPerformance / "
               f"EndToEndLatency {meta['kafka_version']} run in one warm JVM "
               f"(scripts/bench/BenchDriver.java, -Xmx512m); {meta.get('librdkafka', 'rdkgen')}")
    out.append(f"- Java producer idempotence: {meta['idempotence']}")
    out.append(f"- tier T0 everywhere (no fsync per message on either side); records 1 KiB, "
               f"no compression; MB = MiB (as Kafka's tools count); ratio = this / kafka, median "
               f"of per-pair ratios [min-max] over interleaved pairs")
    out.append(f"- load average at start / end: {meta['load_start']} / {meta['load_end']}; "
               f"median CPU used by everything else during a measured run: "
               f"{meta['other_cpu_share']} of the machine")
    out.append("")
    out.append("| workload | client | metric | this | Kafka | this/Kafka [min-max] (pairs) | better | target |")
    out.append("|---|---|---|---:|---:|---|---|---|")
    for r in rows:
        ratio = "n/a" if r["ratio"] is None else (
            f"{r['ratio']:.3g} [{r['ratio_min']:.3g}-{r['ratio_max']:.3g}] ({r['pairs']})")
        tgt = ""
        if "target" in r:
            met = r["target_met"]
            tgt = f"{r['target']}: " + ("met" if met else ("n/a" if met is None else "**missed**"))
        out.append(f"| {r['workload']} {short_variant(r)} | {r['client']} | {r['metric']} ({r['unit']}) | "
                   f"{fmt(r['this'])} | {fmt(r['kafka'])} | {ratio} | {r['better']} | {tgt} |")
    return "\n".join(out) + "\n"


def utilization_table(results):
    """Median cpu use (share of one cpu) of broker and load generator in the throughput
    runs: a side near its cpu limit (1.0 = one full core here) is the bottleneck."""
    out = ["", "Bottleneck check: median share of one cpu used during the measured runs by the "
           "broker and by the load generator (each has its pinned cpu; 1.00 = saturated), and "
           "what everything else used (other tenants of this machine, kernel writeback, the idle "
           "other broker and Java driver):", "",
           "| workload | client | this: broker / client | Kafka: broker / client | everything else (share of the machine) |",
           "|---|---|---|---|---|"]
    keys = []
    for r in results:
        k = (r["workload"], r["client"], r["variant"])
        if r["workload"] in ("W1", "W2", "W3", "W5") and k not in keys:
            keys.append(k)
    for wl, client, variant in keys:
        cells = []
        for name in ("this", "kafka"):
            rs = [r["metrics"] for r in results if (r["workload"], r["client"], r["variant"]) ==
                  (wl, client, variant) and r["broker"] == name and r["ok"] and r["metrics"].get("wall_s")]
            for m in rs:
                m.setdefault("broker_util", m["broker_cpu_s"] / m["wall_s"])
                m.setdefault("client_util", m["client_cpu_s"] / m["wall_s"])
            if not rs:
                cells.append("n/a")
                continue
            cells.append(f"{statistics.median(m['broker_util'] for m in rs):.2f} / "
                         f"{statistics.median(m['client_util'] for m in rs):.2f}")
        v = variant if wl == "W1" else ("cold" if "cold" in variant else ("hot" if wl == "W5" else ""))
        if wl == "W3":
            v = "@" + variant.split(" ")[0] + "/s"
        other = [r["metrics"]["other_cpu_s"] / r["metrics"]["wall_s"] / (os.cpu_count() or 1)
                 for r in results if (r["workload"], r["client"], r["variant"]) == (wl, client, variant)
                 and r["metrics"].get("wall_s")]
        oc = f"{statistics.median(other):.0%} (max {max(other):.0%})" if other else "n/a"
        out.append(f"| {wl} {v} | {client} | {cells[0]} | {cells[1]} | {oc} |")
    return "\n".join(out) + "\n"


def short_variant(r):
    v = r["variant"]
    if r["workload"] == "W1":
        return v
    if r["workload"] == "W3":
        return "@" + v.split(" ")[0] + "/s"
    if r["workload"] == "W5":
        return "cold" if "cold" in v else "hot"
    return ""


def machine_info():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    return (f"{os.cpu_count()} cpus ({model}), {mem / 1024:.1f} GiB memory, "
            f"kernel {os.uname().release}")


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--broker-bin", required=True)
    ap.add_argument("--rdkgen", required=True)
    ap.add_argument("--driver-classes", required=True)
    ap.add_argument("--only", help="comma-separated subset of W1,W2,W3,W5,W7")
    ap.add_argument("--summarize", help="re-summarize an existing run directory")
    args = ap.parse_args()

    if args.summarize:
        results = [json.loads(l) for l in open(os.path.join(args.summarize, "results.jsonl"))]
        meta = json.load(open(os.path.join(args.summarize, "meta.json")))
        write_summary(args.summarize, os.path.join(REPO, "target", "bench"), results, meta)
        return 0

    ctx = Ctx(args)
    only = set((args.only or "W1,W2,W3,W5,W7").upper().split(","))
    t_start = time.time()
    meta = {"mode": ctx.mode, "machine": machine_info(), "pinning": ctx.pinning,
            "load_start": loadavg(), "kafka_version": os.environ.get("KAFKA_VERSION", "4.1.1"),
            "kafka": f"{os.environ.get('KAFKA_VERSION', '4.1.1')} KRaft single node, "
                     f"{os.environ.get('KAFKA_HEAP_OPTS', '-Xms1G -Xmx1G')}, "
                     "scripts/kafka-reference.sh server.properties (num.network.threads=2, "
                     "num.io.threads=4), Java " + java_version(),
            "this": binary_identity(ctx.broker_bin) + "; default config (flush.policy never)" +
                    (", group_initial_rebalance_delay 0s as Kafka's reference config"
                     if ctx.this_group_delay_knob else ""),
            "profile": ctx.prof, "run_dir": os.path.relpath(ctx.out, REPO),
            "librdkafka": "rdkgen (scripts/bench/rdkgen.c, C) on librdkafka " +
                          subprocess.run([ctx.rdkgen, "version"], capture_output=True,
                                         text=True).stdout.strip()}
    log(f"run directory {ctx.out}")
    log(f"{meta['machine']}; {ctx.pinning}")

    def on_signal(sig, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)

    brokers = []
    try:
        if only & {"W1", "W2", "W3", "W5"}:
            this = ThisBroker(ctx, pick_port(ctx.taken_ports))
            kafka = KafkaBroker(ctx, pick_port(ctx.taken_ports))
            brokers = [this, kafka]
            t = time.time()
            this.start()
            log(f"this broker pid {this.pid} on {this.bootstrap()} ({time.time() - t:.1f}s)")
            t = time.time()
            kafka.start()
            log(f"Kafka pid {kafka.pid} on {kafka.bootstrap()} ({time.time() - t:.1f}s)")
            for b in brokers:
                create_topics(ctx, b, topic_plan(ctx, only))
            time.sleep(1)
            log(f"topics created ({time.time() - t_start:.0f}s)")
            ctx.driver = Driver(ctx)
            log(f"Java driver pid {ctx.driver.proc.pid} ({time.time() - t:.1f}s)")
            check_idempotence(ctx, this)
            meta["idempotence"] = ctx.idempotence
            warm_up(ctx, brokers)
            log(f"warm-up done ({time.time() - t_start:.0f}s)")
            for wl, fn in (("W1", w1), ("W2", w2), ("W3", w3), ("W5", w5)):
                if wl in only or (wl == "W2" and "W3" in only):
                    guarded(ctx, wl, fn, ctx, brokers)
            ctx.driver.close()
            for b in brokers:
                b.stop()
            brokers = []
        meta.setdefault("idempotence", ctx.idempotence)
        if "W7" in only:
            guarded(ctx, "W7", w7, ctx)
    except KeyboardInterrupt:
        log("interrupted")
        raise
    finally:
        if getattr(ctx, "driver", None):
            ctx.driver.close()
        for b in brokers:
            try:
                b.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {b.name}: {e}")
        for pid in list(ctx.started):
            if alive(pid):
                stop_pid(pid)
        shutil.rmtree(ctx.kafka_state, ignore_errors=True)
    meta["load_end"] = loadavg()
    meta["errors"] = ctx.errors
    meta["elapsed_s"] = round(time.time() - t_start, 1)
    write_summary(ctx.out, ctx.bench, ctx.results, meta)
    log(f"done in {meta['elapsed_s']}s")
    return 0


def guarded(ctx, name, fn, *args):
    """A workload that fails is reported and left out; the others still run."""
    try:
        fn(*args)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        import traceback
        log(f"{name} failed: {e}")
        with open(os.path.join(ctx.raw, f"{name}-error.txt"), "w") as f:
            traceback.print_exc(file=f)
        ctx.errors.append(f"{name}: {e}")


def binary_identity(path):
    """Which broker was measured: the tree it was built from and the binary itself."""
    import hashlib
    h = hashlib.sha256(open(path, "rb").read()).hexdigest()[:12]
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
    return (f"target/release/broker built {built} from {head}{' + uncommitted changes' if dirty else ''}"
            f" (sha256 {h})")


def java_version():
    try:
        r = subprocess.run(["java", "-version"], capture_output=True, text=True)
        m = re.search(r'version "([^"]+)"', r.stderr)
        return m[1] if m else "?"
    except OSError:
        return "?"


def write_summary(out_dir, bench_dir, results, meta):
    rows = summarize(results)
    other = [r["metrics"].get("other_cpu_s", 0) / r["metrics"]["wall_s"] / os.cpu_count()
             for r in results if r["metrics"].get("wall_s")]
    meta["other_cpu_share"] = f"{statistics.median(other):.0%}" if other else "n/a"
    failed = [r for r in results if not r["ok"]]
    md = markdown(rows, meta) + utilization_table(results)
    if failed:
        md += "\nRuns that failed (left out of the figures): " + ", ".join(
            f"{r['workload']} {r['client']} {r['broker']} pair {r['pair']} ({r['raw']})" for r in failed) + "\n"
    for e in meta.get("errors") or []:
        md += f"\nWorkload error: {e}\n"
    md += f"\nRaw output: {meta['run_dir']}/ (results.jsonl, raw/). Elapsed {meta.get('elapsed_s', '?')} s.\n"
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for d in (out_dir, bench_dir):
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump(rows, f, indent=1)
        with open(os.path.join(d, "summary.md"), "w") as f:
            f.write(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
