#!/usr/bin/env python3
"""Transactions compatibility scenario for confluent-kafka (librdkafka) against a Kafka broker.

Usage:
    scenario_txn.py BOOTSTRAP [--phase all|produce|verify|restart-verify|cleanup] [--state FILE]

Phases (run.sh restarts the broker between `verify` and `restart-verify`):
  produce         three topics: OUT (3 partitions), IN (3 partitions), OPEN (1 partition).
                  One transactional producer on OUT: commit, abort (records flushed first, so
                  they are in the log), commit, abort, commit. An open transaction keeps
                  read_committed readers at its first offset (the last stable offset), even
                  past records a plain producer writes after it, until it commits. Zombie
                  fencing: a second producer with the same transactional.id fences the first
                  (its next produce and commit fail with a fatal _FENCED), the successor's
                  transaction commits. Consume-transform-produce from IN to OUT with
                  send_offsets_to_transaction and the consumer's group metadata: a committed
                  round moves the group's offsets, an aborted round does not, the re-read round
                  commits; every input is in OUT exactly once.
  verify          read_committed reads exactly the committed records of OUT (per partition in
                  produce order, no aborted ones); read_uncommitted reads every record; the
                  group's committed offsets. Then leaves a transaction open on OPEN (a
                  transactional producer exits without ending it; a plain record after it).
  restart-verify  after the broker restart: the same reads and offsets; the transaction left
                  open still holds OPEN's last stable offset (the broker kept its state); a new
                  producer with that transactional.id aborts it (the coordinator kept its state),
                  the plain record becomes readable, the open records never; that producer
                  commits a transaction of its own.
  cleanup         delete the group and the three topics.
  all             every phase in a row, without a restart (the default).

Prints one line per check, `PASS name`, `FAIL name: why` or `SKIP name: why`, and exits
non-zero if any check failed. A failed check that later checks depend on ends the phase.
Environment: COMPAT_REPLICATION_FACTOR = replication factor of the topics it creates (default 1).
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
try:
    REPLICATION_FACTOR = int(os.environ.get("COMPAT_REPLICATION_FACTOR") or 1)
except ValueError:
    REPLICATION_FACTOR = 0
if REPLICATION_FACTOR < 1:
    sys.exit(f"bad COMPAT_REPLICATION_FACTOR: {os.environ.get('COMPAT_REPLICATION_FACTOR')!r}")
TXN_RECORDS = 30           # records per transaction on OUT (10 per partition)
IN_RECORDS = 30            # consume-transform-produce input (10 per partition)
CTP_FIRST = 12             # inputs processed by the first (committed) round
OPEN_RECORDS = 5           # records of the transaction left open across the restart
OPEN_TXN_TIMEOUT_MS = 900000   # its transaction.timeout.ms (Kafka's transaction.max.timeout.ms)
REQUEST_TIMEOUT = 30       # seconds, transactional calls and admin requests
READ_TIMEOUT = 30          # seconds to read the expected records
IDLE_AFTER = 1.5           # seconds of silence after the expected records: nothing more comes


# ----------------------------------------------------------------------------- reporting

class LibrdkafkaLog(logging.Handler):
    """Keeps librdkafka's log lines (also echoed to stderr) to explain client-side failures."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        if self.lines and self.lines[-1] == msg:
            return
        self.lines.append(msg)
        del self.lines[:-200]
        print(f"librdkafka: {msg}", file=sys.stderr, flush=True)

    def notable(self):
        worst = [ln for ln in self.lines if "FAIL" in ln or "ERROR" in ln]
        return (worst or [None])[-1]


LIBLOG = LibrdkafkaLog()
LOGGER = logging.getLogger("librdkafka-txn")
LOGGER.addHandler(LIBLOG)
LOGGER.setLevel(logging.DEBUG)
LOGGER.propagate = False


class Stop(Exception):
    """A check failed that the rest of the phase depends on."""


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, name, note=None):
        LIBLOG.lines.clear()
        if note:
            print(f"# {name}: {note}", flush=True)
        print(f"PASS {name}", flush=True)

    def fail(self, name, why):
        self.failures += 1
        why = " ".join(str(why).split())
        log = LIBLOG.notable()
        if log:
            why += f" [librdkafka log: {' '.join(log.split())}]"
        LIBLOG.lines.clear()
        print(f"FAIL {name}: {why}", flush=True)

    def skip(self, name, why):
        LIBLOG.lines.clear()
        print(f"SKIP {name}: {why}", flush=True)

    def check(self, name, problems, fatal=False, note=None):
        """problems: list of strings, empty means pass. fatal: raise Stop on failure."""
        if problems:
            extra = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
            self.fail(name, "; ".join(problems[:4]) + extra)
            if fatal:
                raise Stop(name)
        else:
            self.ok(name, note)


def as_error(exc):
    """The KafkaError inside what librdkafka raised (KafkaException, or KafkaError itself)."""
    if isinstance(exc, KafkaError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def err_text(err):
    e = as_error(err)
    if e is None:
        return "no error" if err is None else repr(err)
    flags = [f for f, on in (("fatal", e.fatal()), ("retriable", e.retriable()),
                             ("abortable", e.txn_requires_abort())) if on]
    return f"{e.name()} ({e.code()}{', ' + ', '.join(flags) if flags else ''}): {e.str()}"


def call(fn, *args, **kwargs):
    """Runs a client call. Returns (result, None) or (None, error). A fatal producer error
    that confluent-kafka raises while it serves error_cb comes out of flush()/poll() as a
    SystemError caused by the KafkaException: the cause is returned."""
    try:
        return fn(*args, **kwargs), None
    except KafkaException as e:
        return None, e
    except SystemError as e:
        return None, e.__cause__ if isinstance(e.__cause__, KafkaException) else e


# ----------------------------------------------------------------------------- clients

def common_conf(bootstrap, client_id):
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "socket.timeout.ms": 10000,
        "log_level": 4,
        "logger": LOGGER,
    }


def admin_client(bootstrap):
    return AdminClient(common_conf(bootstrap, "compat-txn-admin"))


class TxnProducer:
    """A transactional producer that records every delivery (partition, offset, key, value)."""

    def __init__(self, bootstrap, tid, name, timeout_ms=60000):
        self.name = name
        self.acked = []            # dicts p, o, k, v
        self.errors = []           # delivery errors
        self.client_errors = []    # error_cb
        self.p = Producer({
            **common_conf(bootstrap, f"compat-txn-{name}"),
            "transactional.id": tid,
            "transaction.timeout.ms": timeout_ms,
            "message.timeout.ms": min(timeout_ms, 30000),
            "linger.ms": 5,
            "error_cb": self.client_errors.append,
        })

    def _on_delivery(self, err, msg):
        if err is not None:
            self.errors.append(f"{(msg.key() or b'').decode()}: {err_text(err)}")
        else:
            self.acked.append({"p": msg.partition(), "o": msg.offset(),
                               "k": (msg.key() or b"").decode(), "v": msg.value().decode()})

    def produce(self, topic, label, count, partitions=PARTITIONS):
        """count records key k-LABEL-i, value LABEL-i, partition i % partitions."""
        for i in range(count):
            while True:
                try:
                    self.p.produce(topic, key=f"k-{label}-{i:03d}", value=f"{label}-{i:03d}",
                                   partition=i % partitions, on_delivery=self._on_delivery,
                                   headers=[("txn", label.encode())])
                    break
                except BufferError:
                    self.p.poll(0.1)
            self.p.poll(0)

    def flush(self, timeout=REQUEST_TIMEOUT):
        """None when everything was delivered, else why not."""
        left, err = call(self.p.flush, timeout)
        if err is not None:
            return f"flush(): {err_text(err)}"
        if left:
            return f"{left} records unacknowledged after {timeout}s"
        if self.errors:
            return f"{len(self.errors)} delivery errors, first: {self.errors[0]}"
        return None

    def take(self, label, status):
        """The acknowledged records so far, tagged for the ledger; resets the list."""
        out = [dict(r, txn=label, status=status) for r in self.acked]
        self.acked = []
        self.errors = []
        return out

    def op(self, what, *args):
        """init_transactions / begin / commit / abort: None or why it failed."""
        _, err = call(getattr(self.p, what), *args)
        return None if err is None else f"{what}: {err_text(err)}"


def plain_producer(bootstrap, name):
    return Producer({**common_conf(bootstrap, f"compat-txn-{name}"), "acks": "all",
                     "enable.idempotence": True, "linger.ms": 5,
                     "message.timeout.ms": 30000})


def produce_plain(bootstrap, topic, label, count, partitions):
    """Non-transactional records. Returns (ledger records, problems)."""
    acked, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err_text(err))
        else:
            acked.append({"p": msg.partition(), "o": msg.offset(), "k": msg.key().decode(),
                          "v": msg.value().decode(), "txn": label, "status": "committed"})

    prod = plain_producer(bootstrap, label)
    for i in range(count):
        prod.produce(topic, key=f"k-{label}-{i:03d}", value=f"{label}-{i:03d}",
                     partition=i % partitions, on_delivery=on_delivery)
    left = prod.flush(REQUEST_TIMEOUT)
    problems = []
    if left:
        problems.append(f"{left} plain records unacknowledged")
    if errors:
        problems.append(f"{len(errors)} plain delivery errors, first: {errors[0]}")
    return acked, problems


def consumer(bootstrap, isolation, group=None, **extra):
    return Consumer({
        **common_conf(bootstrap, f"compat-txn-{isolation}"),
        "group.id": group or f"compat-txn-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **extra,
    })


def read(bootstrap, topic, partitions, isolation, expected, timeout=READ_TIMEOUT):
    """Reads topic from the beginning until every (p, o) in expected arrived and then
    IDLE_AFTER seconds passed without more. Returns [(p, o, k, v, txn header)] in the order
    read, and the errors seen."""
    c = consumer(bootstrap, isolation)
    want = set(expected)
    got, errors = [], []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=500, timeout=0.2)
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(err_text(m.error()))
                    continue
                hdr = dict(m.headers() or []).get("txn")
                got.append((m.partition(), m.offset(), (m.key() or b"").decode(),
                            (m.value() or b"").decode(), hdr.decode() if hdr else None))
            if want <= {(g[0], g[1]) for g in got}:
                if msgs:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= IDLE_AFTER:
                    break
    finally:
        c.close()
    return got, errors


def lso(bootstrap, topic, partition):
    """(low, high) as a read_committed consumer sees them: high = the last stable offset."""
    c = consumer(bootstrap, "read_committed")
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def compare_read(got, ledger, want_status, label):
    """got must be exactly the ledger records whose status is in want_status, each once, per
    partition in offset order, with the content the producer wrote."""
    problems = []
    by_pos = {(r["p"], r["o"]): r for r in ledger}
    want = {(r["p"], r["o"]) for r in ledger if r["status"] in want_status}
    seen = set()
    last = {}
    foreign, wrong_status = [], []
    for p, o, k, v, hdr in got:
        pos = (p, o)
        if pos in seen:
            problems.append(f"p{p}@{o} read twice")
            continue
        seen.add(pos)
        if last.get(p, -1) >= o:
            problems.append(f"p{p}: offset {o} read after {last[p]} (out of order)")
        last[p] = o
        r = by_pos.get(pos)
        if r is None:
            foreign.append(f"p{p}@{o} {v}")
        elif r["status"] not in want_status:
            wrong_status.append(f"p{p}@{o} {v} ({r['status']} transaction {r['txn']})")
        elif (k, v) != (r["k"], r["v"]):
            problems.append(f"p{p}@{o} is {k}={v}, the producer wrote {r['k']}={r['v']}")
    if wrong_status:
        problems.insert(0, f"{len(wrong_status)} records of {label} read "
                           f"(first: {', '.join(wrong_status[:3])})")
    if foreign:
        problems.insert(0, f"{len(foreign)} records nobody acknowledged (first: "
                           f"{', '.join(foreign[:3])})")
    missing = sorted(want - seen)
    if missing:
        problems.insert(0, f"{len(missing)} of {len(want)} expected records missing (first: "
                           + ", ".join(f"p{p}@{o} {by_pos[(p, o)]['v']}"
                                       for p, o in missing[:3]) + ")")
    return problems


def counts(ledger):
    c = {}
    for r in ledger:
        c[r["status"]] = c.get(r["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(c.items()))


def wait_topics_ready(admin, topics, timeout=30.0):
    """None once every topic shows its partitions with leaders, else what was wrong."""
    deadline = time.monotonic() + timeout
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=5)
            last = None
            for topic, n in topics.items():
                tm = md.topics.get(topic)
                if tm is None or tm.error is not None:
                    last = f"{topic}: {'not in metadata' if tm is None else err_text(tm.error)}"
                elif len(tm.partitions) != n:
                    last = f"{topic}: {len(tm.partitions)} partitions, expected {n}"
                elif any(pm.error is not None or pm.leader not in md.brokers
                         for pm in tm.partitions.values()):
                    last = f"{topic}: a partition has no leader"
                if last:
                    break
            if last is None:
                return None
        except KafkaException as e:
            last = f"list_topics: {err_text(e)}"
        time.sleep(0.3)
    return last


def committed_offsets(bootstrap, group, topic, timeout=20.0):
    """The group's committed offsets on topic as {partition: offset}, asked the way a
    read_committed consumer asks (OffsetFetch require_stable: UNSTABLE_OFFSET_COMMIT while a
    transaction's offsets are pending, retried here)."""
    c = consumer(bootstrap, "read_committed", group=group)
    deadline = time.monotonic() + timeout
    last = None
    try:
        while True:
            tps, err = call(c.committed, [TopicPartition(topic, p) for p in range(PARTITIONS)],
                            timeout=10)
            if err is None:
                bad = [tp for tp in tps if tp.error is not None]
                if not bad:
                    return {tp.partition: tp.offset for tp in tps}, None
                last = f"p{bad[0].partition}: {err_text(bad[0].error)}"
            else:
                last = err_text(err)
            if time.monotonic() > deadline:
                return None, last
            time.sleep(0.5)
    finally:
        c.close()


# ----------------------------------------------------------------------------- phases

def phase_produce(bootstrap, state, rep):
    out, inp, opn = state["out"], state["in"], state["open"]
    admin = admin_client(bootstrap)

    # -- topics
    problems = []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=REPLICATION_FACTOR)
         for t, n in ((out, PARTITIONS), (inp, PARTITIONS), (opn, 1))],
        operation_timeout=20, request_timeout=30)
    for t, f in futures.items():
        _, err = call(f.result, timeout=40)
        if err is not None:
            problems.append(f"CreateTopics {t}: {err_text(err)}")
    if not problems:
        state["created"] = True
        why = wait_topics_ready(admin, {out: PARTITIONS, inp: PARTITIONS, opn: 1})
        if why:
            problems.append(why)
    rep.check("txn_create_topics", problems, fatal=True)

    ledger = []
    state["ledger"] = ledger

    # -- init: InitProducerId through the transaction coordinator (FindCoordinator key type 1)
    p = TxnProducer(bootstrap, state["tid_main"], "main")
    t0 = time.monotonic()
    why = p.op("init_transactions", REQUEST_TIMEOUT)
    rep.check("txn_init", [why] if why else [], fatal=True,
              note=f"init_transactions took {time.monotonic() - t0:.1f}s")

    # -- commit, abort (the records are in the log: flushed before the abort), commit, ...
    def one(label, commit, name):
        problems = []
        why = p.op("begin_transaction")
        if why:
            problems.append(why)
        else:
            p.produce(out, label, TXN_RECORDS)
            why = p.flush()
            if why:
                problems.append(why)
            why = p.op("commit_transaction" if commit else "abort_transaction", REQUEST_TIMEOUT)
            if why:
                problems.append(why)
        recs = p.take(label, "committed" if commit else "aborted")
        if not problems and len(recs) != TXN_RECORDS:
            problems.append(f"{len(recs)} of {TXN_RECORDS} records acknowledged")
        ledger.extend(recs)
        rep.check(name, problems, fatal=True)

    one("c1", True, "txn_commit")
    one("a1", False, "txn_abort")
    one("c2", True, "txn_commit_after_abort")
    one("a2", False, "txn_abort_again")
    one("c3", True, "txn_commit_again")

    # -- an open transaction holds the last stable offset; records after it (a plain producer's)
    #    stay unread under read_committed until it ends; read_uncommitted reads them all
    problems = []
    why = p.op("begin_transaction")
    if why:
        rep.check("txn_open_invisible", [why], fatal=True)
    p.produce(out, "o1", 9)
    why = p.flush()
    if why:
        rep.check("txn_open_invisible", [why], fatal=True)
    open_recs = p.take("o1", "committed")   # committed below, once the checks are done
    first_open = {}
    for r in open_recs:
        first_open[r["p"]] = min(first_open.get(r["p"], r["o"]), r["o"])
    plain, problems = produce_plain(bootstrap, out, "plain1", 6, PARTITIONS)
    if problems:
        rep.check("txn_open_invisible", problems, fatal=True)
    for part in range(PARTITIONS):
        (_, hi), err = call(lso, bootstrap, out, part)
        if err is not None:
            problems.append(f"p{part}: ListOffsets read_committed: {err_text(err)}")
        elif hi != first_open[part]:
            problems.append(f"p{part}: read_committed high watermark (last stable offset) {hi}, "
                            f"expected {first_open[part]} (the open transaction's first offset)")
    pending = ledger + [dict(r, status="open") for r in open_recs] + \
        [dict(r, status="after-open") for r in plain]
    got, errors = read(bootstrap, out, PARTITIONS, "read_committed",
                       [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
    time.sleep(1.0)
    problems += compare_read(got, pending, {"committed"}, "the open transaction or after it")
    problems += errors[:1]
    got, errors = read(bootstrap, out, PARTITIONS, "read_uncommitted",
                       [(r["p"], r["o"]) for r in pending])
    problems += [f"read_uncommitted: {x}" for x in
                 compare_read(got, pending, {"committed", "aborted", "open", "after-open"}, "?")]
    rep.check("txn_open_invisible", problems,
              note=f"open transaction first offsets {first_open}")
    why = p.op("commit_transaction", REQUEST_TIMEOUT)
    ledger.extend(open_recs)
    ledger.extend(plain)
    problems = [why] if why else []
    if not problems:
        got, errors = read(bootstrap, out, PARTITIONS, "read_committed",
                           [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
        problems += compare_read(got, ledger, {"committed"}, "aborted transactions")
        problems += errors[:1]
    rep.check("txn_open_visible_after_commit", problems, fatal=True)

    # -- zombie fencing: a second producer with the same transactional.id
    z1 = TxnProducer(bootstrap, state["tid_zombie"], "zombie1")
    problems = []
    for why in (z1.op("init_transactions", REQUEST_TIMEOUT), z1.op("begin_transaction")):
        if why:
            rep.check("txn_zombie_fenced", [f"zombie1 {why}"], fatal=True)
    z1.produce(out, "z1", 6)
    why = z1.flush()
    if why:
        rep.check("txn_zombie_fenced", [f"zombie1 before the fence: {why}"], fatal=True)
    ledger.extend(z1.take("z1", "aborted"))  # the successor's init aborts them
    z2 = TxnProducer(bootstrap, state["tid_zombie"], "zombie2")
    t0 = time.monotonic()
    why = z2.op("init_transactions", REQUEST_TIMEOUT)
    if why:
        rep.check("txn_zombie_fenced", [f"zombie2 {why}"], fatal=True)
    init2 = time.monotonic() - t0
    z1.produce(out, "z1late", 3)
    flush_why = z1.flush(15)
    _, commit_err = call(z1.p.commit_transaction, REQUEST_TIMEOUT)
    late = z1.take("z1late", "aborted")
    ledger.extend(late)   # none should have been accepted; if one was, it must not be read
    if late:
        problems.append(f"{len(late)} records of the fenced producer acknowledged after the "
                        "fence")
    e = as_error(commit_err)
    fence_codes = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                   KafkaError.INVALID_PRODUCER_EPOCH}
    if commit_err is None:
        problems.append("the fenced producer's commit_transaction succeeded")
    elif e is None or e.code() not in fence_codes or not e.fatal():
        problems.append(f"the fenced producer's commit_transaction failed with "
                        f"{err_text(commit_err)}, expected a fatal _FENCED / PRODUCER_FENCED")
    rep.check("txn_zombie_fenced", problems,
              note=f"successor's init took {init2:.1f}s; fenced produce: {flush_why}; "
                   f"fenced commit: {err_text(commit_err)}")
    problems = []
    for why in (z2.op("begin_transaction"),):
        if why:
            problems.append(why)
    if not problems:
        z2.produce(out, "z2", 6)
        why = z2.flush() or z2.op("commit_transaction", REQUEST_TIMEOUT)
        if why:
            problems.append(why)
    recs = z2.take("z2", "committed")
    ledger.extend(recs)
    if not problems:
        got, errors = read(bootstrap, out, PARTITIONS, "read_committed",
                           [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
        problems += compare_read(got, ledger, {"committed"}, "the fenced producer")
    rep.check("txn_fenced_successor_commits", problems, fatal=True)

    # -- consume-transform-produce: IN -> OUT, offsets sent to the transaction
    ins, problems = produce_plain(bootstrap, inp, "in", IN_RECORDS, PARTITIONS)
    state["in_records"] = ins
    rep.check("txn_ctp_input", problems, fatal=True)
    problems = ctp(bootstrap, state, ledger)
    rep.check("txn_send_offsets", problems, fatal=True,
              note=f"ledger: {counts(ledger)}")


def ctp(bootstrap, state, ledger):
    """Three rounds: CTP_FIRST inputs committed, the rest aborted, the rest re-read (from the
    committed offsets) and committed. Returns problems."""
    inp, out, group = state["in"], state["out"], state["group"]
    problems = []
    c = consumer(bootstrap, "read_committed", group=group, **{
        "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
    p = TxnProducer(bootstrap, state["tid_ctp"], "ctp")
    try:
        why = p.op("init_transactions", REQUEST_TIMEOUT)
        if why:
            return [why]
        c.subscribe([inp])

        def take(n, timeout=READ_TIMEOUT):
            got = []
            deadline = time.monotonic() + timeout
            while len(got) < n and time.monotonic() < deadline:
                for m in c.consume(num_messages=n - len(got), timeout=0.5):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            problems.append(f"consume IN: {err_text(m.error())}")
                        continue
                    got.append(m)
            return got

        def round_(n, label, commit):
            msgs = take(n)
            if len(msgs) != n:
                problems.append(f"round {label}: read {len(msgs)} of {n} inputs")
                return None
            why = p.op("begin_transaction")
            if why:
                problems.append(f"round {label}: {why}")
                return None
            for m in msgs:
                p.p.produce(out, key=m.key(), value=b"ctp-" + m.value(), partition=m.partition(),
                            headers=[("txn", label.encode())], on_delivery=p._on_delivery)
            positions = c.position(c.assignment())
            meta = c.consumer_group_metadata()
            why = p.flush()
            if not why:
                _, err = call(p.p.send_offsets_to_transaction, positions, meta, REQUEST_TIMEOUT)
                why = f"send_offsets_to_transaction: {err_text(err)}" if err is not None else None
            if not why:
                why = p.op("commit_transaction" if commit else "abort_transaction",
                           REQUEST_TIMEOUT)
            ledger.extend(p.take(label, "committed" if commit else "aborted"))
            if why:
                problems.append(f"round {label}: {why}")
                return None
            return {tp.partition: tp.offset for tp in positions}, msgs

        r1 = round_(CTP_FIRST, "ctp1", True)
        if r1 is None:
            return problems
        got, why = committed_offsets(bootstrap, group, inp)
        if why:
            return problems + [f"after the committed round: committed offsets: {why}"]
        if got != r1[0]:
            problems.append(f"after the committed round the group's offsets are {got}, "
                            f"expected the positions sent {r1[0]}")
        r2 = round_(IN_RECORDS - CTP_FIRST, "ctp2", False)
        if r2 is None:
            return problems
        got, why = committed_offsets(bootstrap, group, inp)
        if why:
            return problems + [f"after the aborted round: committed offsets: {why}"]
        if got != r1[0]:
            problems.append(f"after the aborted round the group's offsets are {got}, expected "
                            f"them unchanged at {r1[0]}")
        # rewind to the committed offsets, as an exactly-once application does after an abort
        for tp in c.assignment():
            c.seek(TopicPartition(inp, tp.partition, got[tp.partition]))
        r3 = round_(IN_RECORDS - CTP_FIRST, "ctp3", True)
        if r3 is None:
            return problems
        again = sorted((m.partition(), m.offset()) for m in r3[1])
        aborted = sorted((m.partition(), m.offset()) for m in r2[1])
        if again != aborted:
            problems.append(f"after the rewind the consumer read {again[:4]}..., expected the "
                            f"aborted round's inputs {aborted[:4]}...")
        got, why = committed_offsets(bootstrap, group, inp)
        ends = {pp: IN_RECORDS // PARTITIONS for pp in range(PARTITIONS)}
        if why:
            problems.append(f"after the last round: committed offsets: {why}")
        elif got != ends:
            problems.append(f"after the last round the group's offsets are {got}, expected {ends}")
        state["ctp_committed"] = got
        return problems + check_ctp_output(bootstrap, state, ledger)
    finally:
        c.close()


def check_ctp_output(bootstrap, state, ledger):
    """Every IN record is in OUT's read_committed view exactly once."""
    got, errors = read(bootstrap, state["out"], PARTITIONS, "read_committed",
                       [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
    problems = compare_read(got, ledger, {"committed"}, "aborted transactions") + errors[:1]
    outputs = {}
    for _, _, _, v, _ in got:
        if v.startswith("ctp-"):
            outputs[v[4:]] = outputs.get(v[4:], 0) + 1
    inputs = [r["v"] for r in state["in_records"]]
    twice = [v for v, n in outputs.items() if n > 1]
    lost = [v for v in inputs if v not in outputs]
    if twice:
        problems.append(f"{len(twice)} inputs in the output more than once (first: {twice[:3]})")
    if lost:
        problems.append(f"{len(lost)} inputs not in the committed output (first: {lost[:3]})")
    return problems


def check_reads(bootstrap, state, rep):
    out, ledger = state["out"], state.get("ledger") or []
    if not ledger:
        rep.check("txn_read_committed", ["no ledger from the produce phase"], fatal=True)
    got, errors = read(bootstrap, out, PARTITIONS, "read_committed",
                       [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
    rep.check("txn_read_committed",
              compare_read(got, ledger, {"committed"}, "aborted transactions") + errors[:1],
              note=f"read {len(got)} records; the log holds {counts(ledger)}")
    got, errors = read(bootstrap, out, PARTITIONS, "read_uncommitted",
                       [(r["p"], r["o"]) for r in ledger])
    rep.check("txn_read_uncommitted",
              compare_read(got, ledger, {"committed", "aborted"}, "?") + errors[:1],
              note=f"read {len(got)} records")
    got, why = committed_offsets(bootstrap, state["group"], state["in"])
    want = {p: IN_RECORDS // PARTITIONS for p in range(PARTITIONS)}
    rep.check("txn_offsets_committed", [why] if why else
              ([] if got == want else [f"committed offsets {got}, expected {want}"]))


def phase_verify(bootstrap, state, rep):
    check_reads(bootstrap, state, rep)

    # -- leave a transaction open on OPEN for the restart: the producer exits without ending
    #    it (librdkafka does not abort on destroy); a plain record after it
    opn = state["open"]
    p = TxnProducer(bootstrap, state["tid_open"], "open", timeout_ms=OPEN_TXN_TIMEOUT_MS)
    problems = []
    why = p.op("init_transactions", REQUEST_TIMEOUT) or p.op("begin_transaction")
    if why:
        rep.check("txn_leave_open", [why], fatal=True)
    p.produce(opn, "open", OPEN_RECORDS, partitions=1)
    why = p.flush()
    if why:
        rep.check("txn_leave_open", [why], fatal=True)
    open_recs = p.take("open", "open")
    state["open_ledger"] = open_recs
    state["open_since"] = time.time()
    plain, problems = produce_plain(bootstrap, opn, "plain-open", 2, 1)
    state["open_ledger"] += [dict(r, status="after-open") for r in plain]
    if not problems:
        (_, hi), err = call(lso, bootstrap, opn, 0)
        first = min(r["o"] for r in open_recs)
        if err is not None:
            problems.append(f"ListOffsets read_committed: {err_text(err)}")
        elif hi != first:
            problems.append(f"last stable offset {hi}, expected {first} (the open transaction)")
    # the process ends without commit or abort: purge nothing, just drop the handle
    del p
    rep.check("txn_leave_open", problems, fatal=True,
              note=f"{OPEN_RECORDS} records in an open transaction, then 2 plain records")


def phase_restart_verify(bootstrap, state, rep):
    check_reads(bootstrap, state, rep)

    opn, recs = state["open"], state.get("open_ledger") or []
    if not recs:
        rep.check("txn_open_after_restart", ["no open transaction from the verify phase"],
                  fatal=True)
    first = min(r["o"] for r in recs if r["status"] == "open")
    age = time.time() - state["open_since"]
    # -- the open transaction survived the restart: read_committed still stops at its start
    if age > OPEN_TXN_TIMEOUT_MS / 1000 - 30:
        rep.skip("txn_open_after_restart", f"the transaction was left open {age:.0f}s ago, too "
                 "close to its timeout: the coordinator may have aborted it on its own")
    else:
        problems = []
        (_, hi), err = call(lso, bootstrap, opn, 0)
        if err is not None:
            problems.append(f"ListOffsets read_committed: {err_text(err)}")
        elif hi != first:
            problems.append(f"last stable offset {hi} after the restart, expected {first} (the "
                            "transaction left open before it)")
        got, errors = read(bootstrap, opn, 1, "read_committed", [], timeout=5)
        problems += compare_read(got, recs, set(), "the open transaction or after it")
        rep.check("txn_open_after_restart", problems,
                  note=f"open for {age:.0f}s, last stable offset {hi}")

    # -- a new producer with that transactional.id aborts it; the plain records become readable
    p = TxnProducer(bootstrap, state["tid_open"], "open-again")
    t0 = time.monotonic()
    why = p.op("init_transactions", REQUEST_TIMEOUT)
    problems = [why] if why else []
    ledger = [dict(r, status="aborted" if r["status"] == "open" else "committed") for r in recs]
    if not problems:
        why = p.op("begin_transaction")
        if not why:
            p.produce(opn, "after-restart", 3, partitions=1)
            why = p.flush() or p.op("commit_transaction", REQUEST_TIMEOUT)
        ledger += p.take("after-restart", "committed")
        if why:
            problems.append(why)
    if not problems:
        got, errors = read(bootstrap, opn, 1, "read_committed",
                           [(r["p"], r["o"]) for r in ledger if r["status"] == "committed"])
        problems += compare_read(got, ledger, {"committed"}, "the transaction left open")
        problems += errors[:1]
    rep.check("txn_abort_open_by_init", problems,
              note=f"init_transactions took {time.monotonic() - t0:.1f}s")


def phase_cleanup(bootstrap, state, rep):
    admin = admin_client(bootstrap)
    problems = []
    # right after a restart the group coordinator may still be loading: retried for 30 s
    retry = {KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
             KafkaError.NOT_COORDINATOR}
    deadline = time.monotonic() + 30
    while True:
        f = admin.delete_consumer_groups([state["group"]], request_timeout=REQUEST_TIMEOUT)
        _, err = call(f[state["group"]].result, timeout=REQUEST_TIMEOUT + 5)
        e = as_error(err)
        if err is not None and e and e.code() in retry and time.monotonic() < deadline:
            time.sleep(0.5)
            continue
        break
    if err is not None and not (e and e.code() == KafkaError.GROUP_ID_NOT_FOUND):
        problems.append(f"delete_consumer_groups: {err_text(err)}")
    rep.check("txn_delete_group", problems)
    if not state.get("created"):
        rep.check("txn_delete_topics", ["the topics were not created in the produce phase"])
        return
    problems = []
    topics = [state["out"], state["in"], state["open"]]
    for t, f in admin.delete_topics(topics, operation_timeout=15, request_timeout=20).items():
        _, err = call(f.result, timeout=30)
        if err is not None:
            problems.append(f"DeleteTopics {t}: {err_text(err)}")
    deadline = time.monotonic() + 20
    while not problems:
        left = [t for t in topics if t in admin.list_topics(timeout=5).topics]
        if not left:
            break
        if time.monotonic() > deadline:
            problems.append(f"{left} still in metadata 20s after the delete")
        time.sleep(0.3)
    rep.check("txn_delete_topics", problems)


# ----------------------------------------------------------------------------- main

PHASES = {
    "produce": phase_produce,
    "verify": phase_verify,
    "restart-verify": phase_restart_verify,
    "cleanup": phase_cleanup,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bootstrap")
    ap.add_argument("--phase", choices=["all"] + list(PHASES), default="all")
    ap.add_argument("--state", help="state file shared between phases "
                                    "(default: a temporary file, only with --phase all)")
    args = ap.parse_args()
    if args.phase != "all" and not args.state:
        ap.error("--state is required unless --phase all")
    tmp_dir = None if args.state else tempfile.mkdtemp(prefix="compat-txn-")
    state_file = args.state or os.path.join(tmp_dir, "state.json")

    rep = Report()
    try:
        if args.phase in ("all", "produce"):
            suffix = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
            state = {"out": f"compat-txn-out-{suffix}", "in": f"compat-txn-in-{suffix}",
                     "open": f"compat-txn-open-{suffix}", "group": f"compat-txn-group-{suffix}",
                     "tid_main": f"compat-txn-main-{suffix}",
                     "tid_zombie": f"compat-txn-zombie-{suffix}",
                     "tid_ctp": f"compat-txn-ctp-{suffix}",
                     "tid_open": f"compat-txn-open-{suffix}"}
            with open(state_file, "w") as f:
                json.dump(state, f)
            print(f"# topics {state['out']} {state['in']} {state['open']}", flush=True)
        phases = list(PHASES) if args.phase == "all" else [args.phase]
        for phase in phases:
            with open(state_file) as f:
                state = json.load(f)
            try:
                PHASES[phase](args.bootstrap, state, rep)
            except Stop:
                pass
            finally:
                with open(state_file, "w") as f:
                    json.dump(state, f)
    except Exception as e:  # noqa: BLE001 - a client exception must not hide the report
        import traceback
        traceback.print_exc()
        rep.fail(f"{args.phase}_phase", f"scenario crashed: {e!r}")
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
