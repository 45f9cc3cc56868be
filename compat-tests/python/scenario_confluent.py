#!/usr/bin/env python3
"""Client compatibility scenario for confluent-kafka (librdkafka) against a Kafka broker.

Usage:
    scenario_confluent.py BOOTSTRAP [--phase all|produce|verify|cleanup] [--state FILE]

Phases (run.sh restarts the broker between two `verify` runs):
  produce  create a 3-partition topic (max.message.bytes=10000), produce records with
           explicit timestamps, keyed records with every codec, and one record over the
           topic's max.message.bytes (must fail with MESSAGE_TOO_LARGE). What was
           acknowledged (partition, offset, timestamp, content) goes to the state file.
           Then a second, compacted topic (cleanup.policy=compact, 1 partition): a batch of
           keyless records and a batch mixing keyed and keyless records must fail whole with
           INVALID_RECORD, a keyed record must be delivered at offset 0.
  verify   metadata, consume everything from offset 0 and compare with the state file
           (keys, values, headers, timestamps, per-partition order), offsets by timestamp.
  cleanup  delete the topics and check they disappear from metadata.
  all      produce, verify, cleanup in one go (the default).

Prints one line per check, `PASS name`, `FAIL name: why` or `SKIP name: why`, and exits
non-zero if any check failed.
Environment: COMPAT_REPLICATION_FACTOR = replication factor of the topics it creates (default 1).
"""

import argparse
import base64
import json
import logging
import os
import random
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
    TIMESTAMP_CREATE_TIME,
)
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
MAX_MESSAGE_BYTES = 10000
# replication factor of the topics created: COMPAT_REPLICATION_FACTOR (run.sh --cluster: 3)
try:
    REPLICATION_FACTOR = int(os.environ.get("COMPAT_REPLICATION_FACTOR") or 1)
except ValueError:
    REPLICATION_FACTOR = 0
if REPLICATION_FACTOR < 1:
    sys.exit(f"bad COMPAT_REPLICATION_FACTOR: {os.environ.get('COMPAT_REPLICATION_FACTOR')!r}")
RECORDS_PER_CODEC = 120
KEYS_PER_CODEC = 12
TS_RECORDS_PER_PARTITION = 5
TS_STEP_MS = 1000


# ----------------------------------------------------------------------------- reporting

class LibrdkafkaLog(logging.Handler):
    """Keeps librdkafka's log lines (also echoed to stderr) to explain client-side failures."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        if self.lines and self.lines[-1] == msg:
            return  # a client retrying against a dead broker repeats itself endlessly
        self.lines.append(msg)
        del self.lines[:-200]
        print(f"librdkafka: {msg}", file=sys.stderr, flush=True)

    def notable(self):
        """The most telling line since the last check: a FAIL/ERROR one, else the last one."""
        worst = [ln for ln in self.lines if "FAIL" in ln or "ERROR" in ln]
        return (worst or self.lines or [None])[-1]


LIBLOG = LibrdkafkaLog()
LOGGER = logging.getLogger("librdkafka")
LOGGER.addHandler(LIBLOG)
LOGGER.setLevel(logging.DEBUG)
LOGGER.propagate = False


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, name):
        LIBLOG.lines.clear()
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

    def check(self, name, problems):
        """problems: list of strings; empty means pass. Shows the first few."""
        if problems:
            extra = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            self.fail(name, "; ".join(problems[:3]) + extra)
        else:
            self.ok(name)


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def show(data, limit=40):
    if data is None:
        return "null"
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + f"...({len(data)} bytes)"


def err_text(err):
    """KafkaError as the client shows it: NAME (code): message."""
    if err is None:
        return "no error"
    if isinstance(err, KafkaError):
        return f"{err.name()} ({err.code()}): {err.str()}"
    return str(err)


# ----------------------------------------------------------------------------- clients

def common_conf(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "compat-confluent",
        "socket.timeout.ms": 10000,
        # librdkafka's warnings and errors go through LIBLOG (served by poll/flush)
        "log_level": 4,
        "logger": LOGGER,
    }


def admin_client(bootstrap):
    return AdminClient(common_conf(bootstrap))


def topic_metadata(admin, topic, timeout=5.0):
    """Metadata for all topics (never auto-creates), then pick ours. None if absent."""
    md = admin.list_topics(timeout=timeout)
    return md, md.topics.get(topic)


def wait_topic_ready(admin, topic, partitions, timeout=20.0):
    """Wait until the topic shows `partitions` partitions, each with a known leader."""
    deadline = time.monotonic() + timeout
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            md, tm = topic_metadata(admin, topic)
            if tm is None:
                last = "topic not in metadata"
            elif tm.error is not None:
                last = f"topic error {err_text(tm.error)}"
            elif len(tm.partitions) != partitions:
                last = f"{len(tm.partitions)} partitions, expected {partitions}"
            else:
                bad = [p for p, pm in tm.partitions.items()
                       if pm.error is not None or pm.leader not in md.brokers]
                if not bad:
                    return None
                pm = tm.partitions[bad[0]]
                last = (f"partition {bad[0]}: leader {pm.leader} (brokers {sorted(md.brokers)}), "
                        f"error {err_text(pm.error) if pm.error else 'none'}")
        except KafkaException as e:
            last = f"list_topics: {err_text(e.args[0])}"
        time.sleep(0.3)
    return last


# ----------------------------------------------------------------------------- produce

def make_records(topic, codec, rng):
    """Keyed records for one codec: compressible text plus some binary, headers on most."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    out = []
    for i in range(RECORDS_PER_CODEC):
        key = f"key-{codec}-{i % KEYS_PER_CODEC:02d}".encode()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 80)))
        value = f"{codec}|{i}|{text}|".encode() + bytes(rng.randrange(256) for _ in range(16))
        headers = [("codec", codec.encode()), ("seq", str(i).encode())]
        if i % 10 == 3:
            headers.append(("empty", b""))
        if i % 10 == 7:
            headers.append(("null-header", None))
        if i % 25 == 11:
            value = None  # tombstone: null value must come back as null
        if i % 25 == 12:
            value = b""  # empty value must come back as empty, not null
        if i % 30 == 29:
            headers = []
        out.append({"key": key, "value": value, "headers": headers})
    return out


def produce_batch(bootstrap, topic, records, codec, report_name, rep, extra_conf=None,
                  group=None, problems_out=None):
    """Produce `records` (dicts with key/value/headers and optional partition/timestamp).

    Returns the acknowledged records (with partition/offset/timestamp): on partial failure
    only those that were acknowledged, so that `verify` expects exactly what is in the log.
    `group` names this produce call in the state (default: the codec); with `problems_out`
    the problems are appended there instead of being reported as `report_name`.
    """
    conf = common_conf(bootstrap)
    conf.update({
        "compression.type": codec,
        "linger.ms": 20,
        # batches stay under the topic's max.message.bytes (10000)
        "batch.size": 8000,
        "acks": "all",
        "message.timeout.ms": 20000,
        # strict produce order per partition even if a request were retried
        "max.in.flight.requests.per.connection": 1,
    })
    if extra_conf:
        conf.update(extra_conf)
    producer = Producer(conf)
    results = [None] * len(records)

    def on_delivery(idx):
        def cb(err, msg):
            results[idx] = (err, msg.partition(), msg.offset(), msg.timestamp())
        return cb

    problems = []
    try:
        for i, r in enumerate(records):
            kwargs = {"key": r["key"], "value": r["value"], "on_delivery": on_delivery(i)}
            if r.get("headers"):
                kwargs["headers"] = r["headers"]
            if r.get("partition") is not None:
                kwargs["partition"] = r["partition"]
            if r.get("timestamp") is not None:
                kwargs["timestamp"] = r["timestamp"]
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
    except (KafkaException, ValueError, TypeError) as e:
        problems.append(f"produce() raised {e}")
    remaining = producer.flush(30)
    if remaining:
        problems.append(f"{remaining} of {len(records)} records not acknowledged within 30s")
    acked = []
    for i, (r, res) in enumerate(zip(records, results)):
        if res is None:
            if not remaining and not problems:
                problems.append(f"record {i}: no delivery report")
            continue
        err, part, off, (ts_type, ts) = res
        if err is not None:
            problems.append(f"record {i}: {err_text(err)}")
            continue
        if r.get("partition") is not None and part != r["partition"]:
            problems.append(f"record {i}: acknowledged on partition {part}, sent to {r['partition']}")
        if r.get("timestamp") is not None and ts_type == TIMESTAMP_CREATE_TIME and ts != r["timestamp"]:
            problems.append(f"record {i}: delivery report timestamp {ts}, sent {r['timestamp']}")
        acked.append({
            "codec": codec, "group": group or codec, "seq": i,
            "partition": part, "offset": off, "timestamp": ts,
            "key": b64(r["key"]), "value": b64(r["value"]),
            "headers": [[k, b64(v)] for k, v in (r.get("headers") or [])],
        })
    # produce order must be offset order within a partition (max.in.flight=1, one producer)
    last = {}
    for a in acked:
        p = a["partition"]
        if p in last and a["offset"] <= last[p]:
            problems.append(f"partition {p}: record {a['seq']} got offset {a['offset']} "
                            f"after offset {last[p]}")
        last[p] = a["offset"]
    if problems_out is not None:
        problems_out.extend(problems)
    else:
        rep.check(report_name, problems)
    return acked


def phase_produce(bootstrap, state, rep):
    topic = state["topic"]
    admin = admin_client(bootstrap)

    # -- create the topic
    try:
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=REPLICATION_FACTOR,
                      config={"max.message.bytes": str(MAX_MESSAGE_BYTES)})],
            operation_timeout=15, request_timeout=20)
        futures[topic].result(timeout=30)
    except KafkaException as e:
        admin.poll(0)
        rep.fail("create_topic", f"CreateTopics: {err_text(e.args[0])}")
        return
    except Exception as e:  # noqa: BLE001 - report anything the client raises
        rep.fail("create_topic", f"CreateTopics: {e!r}")
        return
    why = wait_topic_ready(admin, topic, PARTITIONS)
    if why:
        rep.fail("create_topic", f"created but not ready in metadata: {why}")
        return
    rep.ok("create_topic")
    state["created"] = True

    acked_all = []

    # -- explicit timestamps first, so they are the first records of every partition
    base = (int(time.time() * 1000) - 600_000) // 1000 * 1000
    # two groups per partition: uncompressed, then one zstd batch whose records have
    # different timestamps (a lookup must find the record inside the compressed batch)
    problems = []
    for g, codec in enumerate(["none", "zstd"]):
        ts_records = []
        for p in range(PARTITIONS):
            for k in range(TS_RECORDS_PER_PARTITION):
                n = g * TS_RECORDS_PER_PARTITION + k
                ts_records.append({
                    "key": f"ts-{p}-{n}".encode(), "value": f"timestamped {p}/{n}".encode(),
                    "headers": [("kind", b"timestamp")], "partition": p,
                    "timestamp": base + n * TS_STEP_MS,
                })
        acked = produce_batch(bootstrap, topic, ts_records, codec, "produce_timestamps", rep,
                              group=f"timestamps-{codec}", problems_out=problems)
        for a in acked or []:
            a["codec"] = "timestamps"
        acked_all += acked or []
    rep.check("produce_timestamps", problems)
    state["ts_base"] = base

    # -- keyed records with every codec
    rng = random.Random(topic)
    for codec in CODECS:
        records = make_records(topic, codec, rng)
        acked = produce_batch(bootstrap, topic, records, codec, f"produce_{codec}", rep)
        if acked is not None:
            acked_all += acked

    # -- one record larger than the topic's max.message.bytes
    big = {"key": b"too-large", "value": os.urandom(2 * MAX_MESSAGE_BYTES), "headers": []}
    conf = common_conf(bootstrap)
    conf.update({"compression.type": "none", "linger.ms": 0, "acks": "all",
                 "message.timeout.ms": 15000})
    producer = Producer(conf)
    result = []
    producer.produce(topic, key=big["key"], value=big["value"], partition=0,
                     on_delivery=lambda err, msg: result.append((err, msg.offset())))
    producer.flush(20)
    if not result:
        rep.fail("message_too_large", "no delivery report within 20s")
    else:
        err, off = result[0]
        if err is None:
            rep.fail("message_too_large",
                     f"{len(big['value'])}-byte record was accepted at offset {off} "
                     f"(topic max.message.bytes={MAX_MESSAGE_BYTES})")
        elif err.code() != KafkaError.MSG_SIZE_TOO_LARGE:
            rep.fail("message_too_large", f"expected MSG_SIZE_TOO_LARGE (10), got {err_text(err)}")
        else:
            rep.ok("message_too_large")

    state["records"] = acked_all

    compacted_keyless(bootstrap, state, rep)


COMPACTED_CHECKS = ["compacted_keyless_rejected", "compacted_mixed_batch_rejected",
                    "compacted_keyed_accepted"]


def produce_one_batch(bootstrap, topic, records):
    """records: (key, value) pairs, produced to partition 0 in one batch (linger.ms 200,
    one flush). Returns one (error or None, offset) per record, None where no delivery
    report came within 20s."""
    conf = common_conf(bootstrap)
    conf.update({"compression.type": "none", "linger.ms": 200, "acks": "all",
                 "message.timeout.ms": 15000})
    producer = Producer(conf)
    results = [None] * len(records)

    def on_delivery(idx):
        def cb(err, msg):
            results[idx] = (err, msg.offset())
        return cb

    for i, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, partition=0, on_delivery=on_delivery(i))
    producer.flush(20)
    return results


def compacted_keyless(bootstrap, state, rep):
    """A compacted topic refuses records without a key (Kafka's LogValidator: the whole
    batch fails with INVALID_RECORD and record_errors naming the keyless records); librdkafka
    reports INVALID_RECORD in every delivery report of the batch."""
    topic = state["topic"] + "-compacted"
    admin = admin_client(bootstrap)
    try:
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=REPLICATION_FACTOR,
                      config={"cleanup.policy": "compact"})],
            operation_timeout=15, request_timeout=20)
        futures[topic].result(timeout=30)
    except KafkaException as e:
        admin.poll(0)
        why = f"CreateTopics of {topic} (cleanup.policy=compact): {err_text(e.args[0])}"
    except Exception as e:  # noqa: BLE001 - report anything the client raises
        why = f"CreateTopics of {topic} (cleanup.policy=compact): {e!r}"
    else:
        state["compacted_topic"] = topic
        why = wait_topic_ready(admin, topic, 1)
        why = why and f"{topic} created but not ready in metadata: {why}"
    if why:
        rep.fail(COMPACTED_CHECKS[0], why)
        for name in COMPACTED_CHECKS[1:]:
            rep.skip(name, "no compacted topic")
        return

    def rejected(name, records):
        problems, seen = [], set()
        for i, res in enumerate(produce_one_batch(bootstrap, topic, records)):
            kind = "keyless" if records[i][0] is None else "keyed"
            if res is None:
                problems.append(f"{kind} record {i}: no delivery report within 20s")
                continue
            err, off = res
            if err is None:
                problems.append(f"{kind} record {i} delivered at offset {off}, expected "
                                f"INVALID_RECORD (87)")
            elif err.code() != KafkaError.INVALID_RECORD:
                problems.append(f"{kind} record {i}: expected INVALID_RECORD (87), got "
                                f"{err_text(err)}")
            else:
                seen.add(err_text(err))
        for text in sorted(seen):
            print(f"# {name}: {text}", flush=True)
        rep.check(name, problems)

    rejected(COMPACTED_CHECKS[0], [(None, f"keyless {i}".encode()) for i in range(3)])
    rejected(COMPACTED_CHECKS[1], [(b"mixed-1", b"keyed"), (None, b"keyless"),
                                   (b"mixed-3", b"keyed")])
    # nothing of the rejected batches is in the log: the first record lands at offset 0
    res = produce_one_batch(bootstrap, topic, [(b"key-1", b"keyed value")])[0]
    if res is None:
        rep.fail(COMPACTED_CHECKS[2], "no delivery report within 20s")
    elif res[0] is not None:
        rep.fail(COMPACTED_CHECKS[2], f"keyed record refused: {err_text(res[0])}")
    elif res[1] != 0:
        rep.fail(COMPACTED_CHECKS[2], f"delivered at offset {res[1]}, expected 0 (the "
                                      f"rejected batches must not take offsets)")
    else:
        rep.ok(COMPACTED_CHECKS[2])


# ----------------------------------------------------------------------------- verify

def consume_all(bootstrap, topic, expected_total, timeout=40.0):
    """Read every partition from offset 0 to its high watermark. Returns (msgs, errors, hw)."""
    conf = common_conf(bootstrap)
    conf.update({
        "group.id": f"compat-confluent-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 200,
    })
    consumer = Consumer(conf)
    msgs, errors = [], []
    hw = {}
    try:
        for p in range(PARTITIONS):
            try:
                hw[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            except KafkaException as e:
                hw[p] = ("error", err_text(e.args[0]))
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        at_end = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    if len(at_end) == PARTITIONS and len(msgs) >= expected_total:
                        break
                    continue
                errors.append(err_text(m.error()))
                if len(errors) > 20:
                    break
                continue
            at_end.discard(m.partition())
            msgs.append(m)
    finally:
        consumer.close()
    return msgs, errors, hw


def offsets_for_times(bootstrap, topic, queries):
    """queries: list of (partition, timestamp) -> list of returned offsets (same order)."""
    conf = common_conf(bootstrap)
    conf.update({"group.id": f"compat-confluent-{uuid.uuid4().hex[:8]}",
                 "enable.auto.commit": False})
    consumer = Consumer(conf)
    out = []
    try:
        # rounds of one timestamp per partition (a partition may appear once per request)
        rounds = []
        for i, (p, ts) in enumerate(queries):
            for r in rounds:
                if p not in r:
                    r[p] = (i, ts)
                    break
            else:
                rounds.append({p: (i, ts)})
        out = [None] * len(queries)
        failed = None
        for r in rounds:
            if failed:
                for i, _ in r.values():
                    out[i] = f"not asked: an earlier request failed with {failed}"
                continue
            try:
                res = consumer.offsets_for_times(
                    [TopicPartition(topic, p, ts) for p, (_, ts) in r.items()], timeout=10)
            except KafkaException as e:
                failed = err_text(e.args[0])
                for i, _ in r.values():
                    out[i] = f"offsets_for_times raised {failed}"
                continue
            for tp in res:
                i = r[tp.partition][0]
                out[i] = f"error {err_text(tp.error)}" if tp.error is not None else tp.offset
    finally:
        consumer.close()
    return out


def phase_verify(bootstrap, state, rep):
    topic = state["topic"]
    expected = state.get("records") or []
    if not state.get("created"):
        rep.fail("metadata", "topic was not created in the produce phase")
        return
    admin = admin_client(bootstrap)

    why = wait_topic_ready(admin, topic, PARTITIONS, timeout=30)
    rep.check("metadata", [why] if why else [])

    by_pos = {(r["partition"], r["offset"]): r for r in expected}
    msgs, errors, hw = consume_all(bootstrap, topic, len(expected))

    # -- everything back, nothing more
    problems = [f"consumer error: {e}" for e in errors[:3]]
    per_part = {p: [] for p in range(PARTITIONS)}
    for m in msgs:
        per_part.setdefault(m.partition(), []).append(m)
    exp_counts = {p: sum(1 for r in expected if r["partition"] == p) for p in range(PARTITIONS)}
    for p in range(PARTITIONS):
        if len(per_part[p]) != exp_counts[p]:
            problems.append(f"partition {p}: consumed {len(per_part[p])} records, "
                            f"expected {exp_counts[p]}")
        lo, hi = hw.get(p, (None, None))
        if lo == "error":
            problems.append(f"partition {p}: watermark lookup (ListOffsets) failed: {hi}")
        elif (lo, hi) != (0, exp_counts[p]):
            problems.append(f"partition {p}: watermarks low={lo} high={hi}, "
                            f"expected low=0 high={exp_counts[p]}")
    rep.check("consume_all", problems)

    # -- content per codec: keys, values, headers
    got = {(m.partition(), m.offset()): m for m in msgs}
    for codec in ["timestamps"] + CODECS:
        name = "content_timestamps" if codec == "timestamps" else f"content_{codec}"
        recs = [r for r in expected if r["codec"] == codec]
        if not recs:
            rep.fail(name, "no acknowledged records from the produce phase")
            continue
        problems = []
        for r in recs:
            pos = (r["partition"], r["offset"])
            m = got.get(pos)
            if m is None:
                problems.append(f"record {codec}#{r['seq']} at partition {pos[0]} offset {pos[1]} "
                                f"not consumed")
                continue
            if m.key() != unb64(r["key"]):
                problems.append(f"p{pos[0]}@{pos[1]} key {show(m.key())} != {show(unb64(r['key']))}")
            if m.value() != unb64(r["value"]):
                problems.append(f"p{pos[0]}@{pos[1]} value {show(m.value())} "
                                f"!= {show(unb64(r['value']))}")
            want_h = [(k, unb64(v)) for k, v in r["headers"]]
            got_h = list(m.headers() or [])
            if got_h != want_h:
                problems.append(f"p{pos[0]}@{pos[1]} headers {got_h!r} != {want_h!r}")
        rep.check(name, problems)

    # -- per-partition order: offsets contiguous from 0, same order as produced
    problems = []
    for p in range(PARTITIONS):
        offs = [m.offset() for m in per_part[p]]
        if offs != list(range(len(offs))):
            first_bad = next((i for i, o in enumerate(offs) if o != i), None)
            problems.append(f"partition {p}: offsets not 0..{len(offs) - 1} in order "
                            f"(index {first_bad} has offset {offs[first_bad]})")
            continue
        exp_recs = sorted((r for r in expected if r["partition"] == p), key=lambda r: r["offset"])
        if not offs and exp_recs:
            problems.append(f"partition {p}: nothing consumed (see consume_all)")
            continue
        # records in the same order as produced: same keys at the same offsets
        for m in per_part[p]:
            r = by_pos.get((p, m.offset()))
            if r is None:
                problems.append(f"partition {p}: offset {m.offset()} was never produced")
                break
            if m.key() != unb64(r["key"]):
                problems.append(f"partition {p} offset {m.offset()}: key {show(m.key())}, the "
                                f"producer got this offset for {show(unb64(r['key']))}")
                break
    rep.check("partition_order", problems)

    # -- timestamps as the producer set them (CreateTime)
    problems = []
    for pos, r in by_pos.items():
        m = got.get(pos)
        if m is None:
            continue
        ts_type, ts = m.timestamp()
        if ts_type != TIMESTAMP_CREATE_TIME:
            problems.append(f"p{pos[0]}@{pos[1]} timestamp type {ts_type}, expected CreateTime")
        elif ts != r["timestamp"]:
            problems.append(f"p{pos[0]}@{pos[1]} timestamp {ts}, producer set {r['timestamp']}")
    rep.check("record_timestamps", problems)

    # -- ListOffsets by timestamp
    if not any(r["codec"] == "timestamps" for r in expected):
        rep.fail("offsets_for_times", "no timestamped records were acknowledged")
        return
    base = state["ts_base"]
    queries = []  # (partition, timestamp, expected offset, inside a compressed batch?)
    for p in range(PARTITIONS):
        recs = sorted((r for r in expected if r["partition"] == p), key=lambda r: r["offset"])
        n = 2 * TS_RECORDS_PER_PARTITION
        times = {base - 1, base + TS_STEP_MS // 2, base + 2 * TS_STEP_MS,
                 base + (TS_RECORDS_PER_PARTITION - 1) * TS_STEP_MS + 1,   # first zstd record
                 base + (TS_RECORDS_PER_PARTITION + 1) * TS_STEP_MS + TS_STEP_MS // 2,
                 base + (n - 1) * TS_STEP_MS, base + (n - 1) * TS_STEP_MS + 1,
                 int(time.time() * 1000) + 86_400_000}
        if recs:
            times |= {recs[-1]["timestamp"], recs[-1]["timestamp"] + 1}
        # where the timestamp changes inside one produce call: up to 2 per call
        per_group = {}
        for prev, r in zip(recs, recs[1:]):
            if (r["group"] == prev["group"] and r["timestamp"] > prev["timestamp"]
                    and per_group.get(r["group"], 0) < 2):
                per_group[r["group"]] = per_group.get(r["group"], 0) + 1
                times.add(r["timestamp"])
        by_off = {r["offset"]: r for r in recs}
        for t in sorted(times):
            # expected: the first offset whose timestamp >= t, else -1 (no such record)
            exp = next((r["offset"] for r in recs if r["timestamp"] >= t), -1)
            r, prev = by_off.get(exp), by_off.get(exp - 1)
            # the answer is a record after the first of a compressed produce call (so most
            # likely inside a compressed batch, where the broker must look at records)
            inside = bool(r and prev and r["group"] == prev["group"]
                          and r["group"] not in ("none", "timestamps-none"))
            queries.append((p, t, exp, inside))
    answers = offsets_for_times(bootstrap, topic, [(p, t) for p, t, _, _ in queries])
    for name, want_inside in (("offsets_for_times", False), ("offsets_for_times_compressed", True)):
        problems = []
        for (p, t, exp, inside), got_off in zip(queries, answers):
            if inside != want_inside:
                continue
            where = f"partition {p} timestamp {t}"
            if isinstance(got_off, str):
                problems.append(f"{where}: {got_off}")
            elif got_off != exp:
                problems.append(f"{where}: offset {got_off}, expected {exp}")
        rep.check(name, problems)


# ----------------------------------------------------------------------------- cleanup

def phase_cleanup(bootstrap, state, rep):
    if not state.get("created"):
        rep.fail("delete_topic", "topic was not created in the produce phase")
        return
    # the scenario's topic and, when the produce phase created it, the compacted one
    topics = [state["topic"]]
    if state.get("compacted_topic"):
        topics.append(state["compacted_topic"])
    admin = admin_client(bootstrap)
    try:
        futures = admin.delete_topics(topics, operation_timeout=15, request_timeout=20)
        for topic in topics:
            futures[topic].result(timeout=30)
    except KafkaException as e:
        admin.poll(0)
        rep.fail("delete_topic", f"DeleteTopics: {err_text(e.args[0])}")
        return
    except Exception as e:  # noqa: BLE001
        rep.fail("delete_topic", f"DeleteTopics: {e!r}")
        return
    deadline = time.monotonic() + 20
    while True:
        try:
            md = admin.list_topics(timeout=5.0)
            left = [t for t in topics if t in md.topics]
            if not left:
                rep.ok("delete_topic")
                return
            last = "; ".join(f"{t} still in metadata ({len(md.topics[t].partitions)} partitions)"
                             for t in left)
        except KafkaException as e:
            last = f"list_topics: {err_text(e.args[0])}"
        if time.monotonic() > deadline:
            rep.fail("delete_topic", f"deleted, but 20s later: {last}")
            return
        time.sleep(0.3)


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bootstrap")
    ap.add_argument("--phase", choices=["all", "produce", "verify", "cleanup"], default="all")
    ap.add_argument("--state", help="state file shared between phases "
                                    "(default: a temporary file, only with --phase all)")
    args = ap.parse_args()

    if args.phase != "all" and not args.state:
        ap.error("--state is required with --phase produce|verify|cleanup")
    tmp_dir = None if args.state else tempfile.mkdtemp(prefix="compat-confluent-")
    state_file = args.state or os.path.join(tmp_dir, "state.json")

    rep = Report()
    try:
        run_phases(args, state_file, rep)
    except Exception as e:  # noqa: BLE001 - a client exception must not hide the report
        import traceback
        traceback.print_exc()
        rep.fail(f"{args.phase}_phase", f"scenario crashed: {e!r}")
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return 1 if rep.failures else 0


def run_phases(args, state_file, rep):
    if args.phase in ("all", "produce"):
        state = {"topic": f"compat-confluent-{int(time.time())}-{uuid.uuid4().hex[:6]}"}
        print(f"# topic {state['topic']}", flush=True)
        try:
            phase_produce(args.bootstrap, state, rep)
        finally:
            with open(state_file, "w") as f:
                json.dump(state, f)
    with open(state_file) as f:
        state = json.load(f)
    if args.phase in ("all", "verify"):
        phase_verify(args.bootstrap, state, rep)
    if args.phase in ("all", "cleanup"):
        phase_cleanup(args.bootstrap, state, rep)


if __name__ == "__main__":
    sys.exit(main())
