#!/usr/bin/env python3
"""Client compatibility scenario for kafka-python (pure Python, pinned in
python/requirements-kafka-python.txt) against a Kafka broker.

Usage:
    scenario_kafka_python.py BOOTSTRAP [--scenario basic|groups]
                             [--phase all|produce|verify|restart-verify|cleanup] [--state FILE]

basic (run.sh restarts the broker between two `verify` runs):
  produce  create_topic (3 partitions, max.message.bytes=10000), produce_timestamps
           (explicit CreateTime: an uncompressed and a zstd batch per partition),
           produce_<codec> (keyed records with headers), large_record (9800 bytes),
           message_too_large (20000 bytes: MESSAGE_TOO_LARGE), idempotent_producer
           (enable_idempotence=True), admin_describe_topic, admin_create_partitions (2 -> 4),
           admin_alter_configs (n.a.: kafka-python has no IncrementalAlterConfigs),
           admin_alter_configs_legacy (AlterConfigs), admin_describe_configs.
  verify   metadata, consume_all, content_*, partition_order, record_timestamps,
           offsets_for_times, offsets_for_times_compressed, idempotent_log, admin_persisted.
  cleanup  delete_topic (all the scenario's topics).
groups:
  produce         group_create_topic (6 partitions), group_produce (20 records per partition)
  verify          three consumers in one group (own threads, range assignor, auto-commit
                  off): group_join, group_consume, group_commit, group_leave_rebalance,
                  group_resume_after_rebalance, group_list, group_describe,
                  group_commit_before_restart, group_produce_more, group_close
  restart-verify  group_committed_after_restart, group_resume_after_restart, group_close
  cleanup         group_list_offsets, group_delete, group_delete_topic

Prints `PASS name`, `FAIL name: why` or `SKIP name: why` per check; exits non-zero on a failure.
Environment: COMPAT_REPLICATION_FACTOR = replication factor of the topics it creates (default 1;
admin_describe_topic expects that many replicas, all in sync).
"""

import argparse
import base64
import json
import logging
import os
import queue
import random
import sys
import threading
import time
import traceback
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
MAX_MESSAGE_BYTES = 10000
RECORDS_PER_CODEC = 60
TS_RECORDS = 5
TS_STEP_MS = 1000
ADMIN_PARTITIONS, ADMIN_ADD_PARTITIONS = 2, 4
GROUP_PARTITIONS = 6
GROUP_PER_PARTITION = 20
GROUP_MORE = 10          # per partition after the rebalance
GROUP_AFTER_RESTART = 5  # per partition for after the restart
CLIENT_ID = "compat-kafka-python"
# replication factor of the topics created: COMPAT_REPLICATION_FACTOR (run.sh --cluster: 3)
try:
    REPLICATION_FACTOR = int(os.environ.get("COMPAT_REPLICATION_FACTOR") or 1)
except ValueError:
    REPLICATION_FACTOR = 0
if REPLICATION_FACTOR < 1:
    sys.exit(f"bad COMPAT_REPLICATION_FACTOR: {os.environ.get('COMPAT_REPLICATION_FACTOR')!r}")

logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")


class Report:
    def __init__(self):
        self.failures = 0

    def ok(self, name):
        print(f"PASS {name}", flush=True)

    def fail(self, name, why):
        self.failures += 1
        print(f"FAIL {name}: {' '.join(str(why).split())}", flush=True)

    def skip(self, name, why):
        print(f"SKIP {name}: {' '.join(str(why).split())}", flush=True)

    def check(self, name, problems):
        if problems:
            extra = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            self.fail(name, "; ".join(str(p) for p in problems[:3]) + extra)
        else:
            self.ok(name)


def err_text(e):
    if isinstance(e, KafkaError):
        return f"{type(e).__name__}: {e}"
    return repr(e)


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def unb64(s):
    return None if s is None else base64.b64decode(s)


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=CLIENT_ID,
                            request_timeout_ms=15000)


def producer(bootstrap, **kw):
    conf = dict(bootstrap_servers=bootstrap, client_id=CLIENT_ID, acks="all",
                request_timeout_ms=15000, max_block_ms=15000, retries=3)
    conf.update(kw)
    return KafkaProducer(**conf)


def consumer(bootstrap, **kw):
    conf = dict(bootstrap_servers=bootstrap, client_id=CLIENT_ID, enable_auto_commit=False,
                auto_offset_reset="earliest", request_timeout_ms=30000,
                fetch_max_wait_ms=200)
    conf.update(kw)
    return KafkaConsumer(**conf)


def wait_topic(bootstrap, topic, partitions, timeout=20.0):
    """'' once Metadata shows the topic with `partitions` partitions, each with a leader."""
    deadline = time.monotonic() + timeout
    last = "no metadata"
    c = consumer(bootstrap)
    try:
        while time.monotonic() < deadline:
            c._client.cluster.request_update()
            c._client.poll(timeout_ms=500)
            try:
                topics = c.topics()
            except KafkaError as e:
                last = f"list topics: {err_text(e)}"
                time.sleep(0.3)
                continue
            if topic not in topics:
                last = "topic not in metadata"
            else:
                parts = c._client.cluster.partitions_for_topic(topic) or set()
                if len(parts) != partitions:
                    last = f"{len(parts)} partitions, expected {partitions}"
                else:
                    leaders = {p: c._client.cluster.leader_for_partition(TopicPartition(topic, p))
                               for p in parts}
                    brokers = {b.nodeId for b in c._client.cluster.brokers()}
                    bad = [p for p, l in leaders.items() if l is None or l not in brokers]
                    if not bad:
                        return ""
                    last = f"partition {bad[0]}: leader {leaders[bad[0]]} not among brokers {sorted(brokers)}"
            time.sleep(0.3)
    finally:
        c.close()
    return last


def create_topic(bootstrap, topic, partitions, configs):
    a = admin(bootstrap)
    try:
        a.create_topics([NewTopic(topic, partitions, REPLICATION_FACTOR, topic_configs=configs)])
    except Exception as e:  # noqa: BLE001
        return f"CreateTopics: {err_text(e)}"
    finally:
        a.close()
    why = wait_topic(bootstrap, topic, partitions)
    return f"created, but {why}" if why else ""


# ----------------------------------------------------------------------------- basic: produce

def make_records(codec, rng, n=RECORDS_PER_CODEC):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    out = []
    for i in range(n):
        key = f"key-{codec}-{i % 12:02d}".encode()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
        value = f"{codec}|{i}|{text}|".encode() + bytes(rng.randrange(256) for _ in range(16))
        headers = [("codec", codec.encode()), ("seq", str(i).encode())]
        if i % 10 == 3:
            headers.append(("empty", b""))
        if i % 10 == 5:
            headers.append(("seq", b"again"))  # a repeated header name
        if i % 10 == 9:
            headers = []
        if i % 15 == 4:
            value = b""
        if i % 15 == 11:
            value = None  # tombstone
        out.append({"key": key, "value": value, "headers": headers, "partition": i % PARTITIONS})
    return out


def send_all(p, topic, codec, group, recs, timestamps=None):
    """Send recs, flush, collect acknowledgements. Returns (acked, problems)."""
    futs = []
    for i, r in enumerate(recs):
        ts = timestamps[i] if timestamps else None
        futs.append((r, p.send(topic, key=r["key"], value=r["value"], headers=r["headers"],
                               partition=r["partition"], timestamp_ms=ts)))
    p.flush(timeout=30)
    acked, problems = [], []
    for seq, (r, f) in enumerate(futs):
        try:
            md = f.get(timeout=30)
        except Exception as e:  # noqa: BLE001
            problems.append(f"record {seq}: {err_text(e)}")
            continue
        acked.append({"codec": codec, "group": group, "seq": seq, "partition": md.partition,
                      "offset": md.offset, "timestamp": md.timestamp,
                      "key": b64(r["key"]), "value": b64(r["value"]),
                      "headers": [[k, b64(v)] for k, v in r["headers"]]})
    return acked, problems


def basic_produce(bootstrap, st, rep):
    rng = random.Random(7)
    topic = st["topic"]
    why = create_topic(bootstrap, topic, PARTITIONS, {"max.message.bytes": str(MAX_MESSAGE_BYTES)})
    st["created"] = not why
    rep.check("create_topic", [why] if why else [])
    if why:
        for n in ["produce_timestamps"] + [f"produce_{c}" for c in CODECS] + ["large_record", "message_too_large"]:
            rep.fail(n, "topic was not created")
    else:
        # explicit timestamps: per partition an uncompressed batch, then a zstd batch
        base = (int(time.time() * 1000) // 1000) * 1000 - 3600_000
        st["ts_base"] = base
        problems = []
        for g, codec in enumerate(["none", "zstd"]):
            p = producer(bootstrap, compression_type=None if codec == "none" else codec,
                         linger_ms=50, batch_size=16384)
            try:
                for part in range(PARTITIONS):
                    recs, tss = [], []
                    for i in range(TS_RECORDS):
                        recs.append({"key": f"ts-{part}-{g}-{i}".encode(),
                                     "value": f"timestamped {part}/{g}/{i}".encode(),
                                     "headers": [("kind", b"timestamp")], "partition": part})
                        tss.append(base + part * 100_000 + (g * TS_RECORDS + i) * TS_STEP_MS)
                    acked, probs = send_all(p, topic, "timestamps", f"ts-{codec}-{part}", recs, tss)
                    for a, t in zip(acked, tss):
                        a["timestamp"] = t
                        a["batch_codec"] = codec
                    st["records"] += acked
                    problems += probs
            finally:
                p.close(timeout=10)
        rep.check("produce_timestamps", problems)
        for codec in CODECS:
            name = f"produce_{codec}"
            try:
                p = producer(bootstrap, compression_type=None if codec == "none" else codec,
                             linger_ms=20, batch_size=6000)
            except Exception as e:  # noqa: BLE001
                rep.fail(name, f"KafkaProducer(compression_type={codec}): {err_text(e)}")
                continue
            try:
                t0 = int(time.time() * 1000)
                acked, probs = send_all(p, topic, codec, codec, make_records(codec, rng))
                st["windows"][codec] = [t0, int(time.time() * 1000)]
                st["records"] += acked
                rep.check(name, probs)
            finally:
                p.close(timeout=10)
        # a record whose batch is just under max.message.bytes, then one above it
        p = producer(bootstrap)
        try:
            big = bytes(rng.randrange(256) for _ in range(9800))
            acked, probs = send_all(p, topic, "large", "large",
                                    [{"key": b"large", "value": big, "headers": [("size", b"9800")],
                                      "partition": 1}])
            st["records"] += acked
            rep.check("large_record", [f"a 9800-byte record (max.message.bytes={MAX_MESSAGE_BYTES}) "
                                       f"was not accepted: {'; '.join(probs)}"] if probs else [])
            try:
                md = p.send(topic, key=b"too-large", value=b"x" * 20000, partition=0).get(timeout=30)
                rep.fail("message_too_large", f"a 20000-byte record was accepted at partition "
                                              f"{md.partition} offset {md.offset}")
            except MessageSizeTooLargeError as e:
                # kafka-python's own max_request_size is 1 MB: this is the broker's error
                rep.ok("message_too_large")
                print(f"# message_too_large: {err_text(e)}", flush=True)
            except Exception as e:  # noqa: BLE001
                rep.fail("message_too_large", f"expected MESSAGE_TOO_LARGE (10), got {err_text(e)}")
        finally:
            p.close(timeout=10)

    # idempotent producer
    why = create_topic(bootstrap, st["idem_topic"], 2, {})
    st["idem_created"] = not why
    if why:
        rep.fail("idempotent_producer", why)
    else:
        try:
            p = producer(bootstrap, enable_idempotence=True, linger_ms=5, batch_size=1000,
                         max_in_flight_requests_per_connection=1)  # kafka-python requires 1
            recs = [{"key": f"idem-{i % 4}".encode(), "value": f"idempotent {i}".encode(),
                     "headers": [("seq", str(i).encode())], "partition": i % 2} for i in range(200)]
            acked, probs = send_all(p, st["idem_topic"], "idempotent", "idem", recs)
            pid = None
            try:
                pid = p._transaction_manager.producer_id_and_epoch.producer_id
            except Exception:  # noqa: BLE001
                pass
            p.close(timeout=10)
            st["idem_records"] = acked
            if pid is None or pid < 0:
                probs.append(f"the producer has no producer id from InitProducerId ({pid})")
            for part in (0, 1):
                offs = [a["offset"] for a in acked if a["partition"] == part]
                if offs != sorted(offs) or len(set(offs)) != len(offs):
                    probs.append(f"partition {part}: offsets not in produce order")
            rep.check("idempotent_producer", probs)
            if not probs:
                print(f"# idempotent_producer: producer id {pid}", flush=True)
        except Exception as e:  # noqa: BLE001
            rep.fail("idempotent_producer", err_text(e))

    admin_produce(bootstrap, st, rep)


def describe_configs(a, topic):
    """{name: (value, is_default/source)} from DescribeConfigs."""
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    out = {}
    for resp in res:
        for r in resp.resources:
            err, msg = r[0], r[1]
            if err:
                raise RuntimeError(f"DescribeConfigs error {err}: {msg}")
            for e in r[4]:
                # v0: (name, value, read_only, is_default, is_sensitive)
                # v1+: (name, value, read_only, config_source, is_sensitive, synonyms...)
                if resp.API_VERSION == 0:
                    out[e[0]] = (e[1], "default" if e[3] else "dynamic")
                else:
                    out[e[0]] = (e[1], {5: "default", 1: "dynamic"}.get(e[3], f"source {e[3]}"))
    return out


def config_problems(got, want):
    probs = []
    for k, v in want.items():
        if k not in got:
            probs.append(f"{k} missing")
        elif got[k][0] != v:
            probs.append(f"{k}={got[k][0]}, expected {v}")
        elif got[k][1] == "default":
            probs.append(f"{k}={v} reported as a default")
    return probs


def admin_produce(bootstrap, st, rep):
    topic = st["admin_topic"]
    names = ["admin_describe_topic", "admin_create_partitions", "admin_alter_configs_legacy",
             "admin_describe_configs"]
    why = create_topic(bootstrap, topic, ADMIN_PARTITIONS, {"retention.ms": "3600000"})
    st["admin_created"] = not why
    if why:
        for n in names:
            rep.fail(n, f"admin topic: {why}")
        return
    a = admin(bootstrap)
    try:
        try:
            d = a.describe_topics([topic])
            probs = []
            t = d[0] if d else None
            if not t or t.get("error_code"):
                probs.append(f"describe_topics: {d}")
            else:
                parts = t["partitions"]
                if len(parts) != ADMIN_PARTITIONS:
                    probs.append(f"{len(parts)} partitions, expected {ADMIN_PARTITIONS}")
                brokers = {b["node_id"] for b in a.describe_cluster()["brokers"]}
                for p in parts:
                    if p["leader"] not in brokers:
                        probs.append(f"partition {p['partition']}: leader {p['leader']} not in {brokers}")
                    reps = sorted(p["replicas"])
                    if (len(reps) != REPLICATION_FACTOR or len(set(reps)) != len(reps)
                            or p["leader"] not in reps or sorted(p["isr"]) != reps):
                        probs.append(f"partition {p['partition']}: replicas {p['replicas']} isr {p['isr']} "
                                     f"(expected {REPLICATION_FACTOR} distinct replicas including the "
                                     f"leader, all in sync)")
                if topic not in a.list_topics():
                    probs.append("not in list_topics()")
            rep.check("admin_describe_topic", probs)
        except Exception as e:  # noqa: BLE001
            rep.fail("admin_describe_topic", err_text(e))
        try:
            a.create_partitions({topic: NewPartitions(ADMIN_ADD_PARTITIONS)})
            why = wait_topic(bootstrap, topic, ADMIN_ADD_PARTITIONS, 15)
            rep.check("admin_create_partitions", [f"CreatePartitions succeeded, but {why}"] if why else [])
            st["admin_partitions"] = ADMIN_ADD_PARTITIONS if not why else ADMIN_PARTITIONS
        except Exception as e:  # noqa: BLE001
            rep.fail("admin_create_partitions", f"CreatePartitions {ADMIN_PARTITIONS} -> {ADMIN_ADD_PARTITIONS}: {err_text(e)}")
        rep.skip("admin_alter_configs", "kafka-python has no IncrementalAlterConfigs (only AlterConfigs)")
        want = {"retention.ms": "7200000", "max.message.bytes": "20000"}
        try:
            res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=want)])
            errs = [(r[0], r[1]) for r in res.resources if r[0]]
            if errs:
                rep.fail("admin_alter_configs_legacy", f"AlterConfigs {want}: errors {errs}")
            else:
                rep.ok("admin_alter_configs_legacy")
                st["admin_configs"] = want
        except Exception as e:  # noqa: BLE001
            rep.fail("admin_alter_configs_legacy", f"AlterConfigs {want}: {err_text(e)}")
        probs = ["no config"]
        deadline = time.monotonic() + 10
        while probs and time.monotonic() < deadline:
            try:
                got = describe_configs(a, topic)
                probs = config_problems(got, st.get("admin_configs") or want)
                # AlterConfigs replaces: retention.ms=3600000 set at creation is gone
                if "cleanup.policy" not in got:
                    probs.append("default cleanup.policy not listed")
                elif got["cleanup.policy"][1] != "default":
                    probs.append(f"cleanup.policy reported as {got['cleanup.policy'][1]}, expected default")
            except Exception as e:  # noqa: BLE001
                probs = [f"DescribeConfigs: {err_text(e)}"]
            if probs:
                time.sleep(0.5)
        rep.check("admin_describe_configs", probs)
    finally:
        a.close()


# ----------------------------------------------------------------------------- basic: verify

def consume_range(bootstrap, topic, partitions, timeout=30.0):
    """Every record of every partition from offset 0 to the end offset. ({tp: [rec]}, ends)"""
    c = consumer(bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        begins = c.beginning_offsets(tps)
        ends = c.end_offsets(tps)
        c.seek_to_beginning()
        got = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.position(tp) >= ends[tp] for tp in tps):
                break
            for tp, msgs in c.poll(timeout_ms=500).items():
                got[tp.partition] += msgs
        return got, {tp.partition: begins[tp] for tp in tps}, {tp.partition: ends[tp] for tp in tps}
    finally:
        c.close()


def basic_verify(bootstrap, st, rep):
    topic = st["topic"]
    if not st.get("created"):
        for n in ["metadata", "consume_all"]:
            rep.fail(n, "topic was not created in the produce phase")
    else:
        why = wait_topic(bootstrap, topic, PARTITIONS, 30)
        rep.check("metadata", [why] if why else [])
        verify_records(bootstrap, st, rep)
    verify_idempotent(bootstrap, st, rep)
    if not st.get("admin_created"):
        rep.fail("admin_persisted", "the admin topic was not created in the produce phase")
    else:
        probs = []
        why = wait_topic(bootstrap, st["admin_topic"], st.get("admin_partitions", ADMIN_PARTITIONS), 15)
        if why:
            probs.append(why)
        if st.get("admin_configs"):
            a = admin(bootstrap)
            try:
                probs += config_problems(describe_configs(a, st["admin_topic"]), st["admin_configs"])
            except Exception as e:  # noqa: BLE001
                probs.append(f"DescribeConfigs: {err_text(e)}")
            finally:
                a.close()
        rep.check("admin_persisted", probs)


def verify_records(bootstrap, st, rep):
    topic = st["topic"]
    exp = st["records"]
    try:
        got, begins, ends = consume_range(bootstrap, topic, PARTITIONS)
    except Exception as e:  # noqa: BLE001
        rep.fail("consume_all", err_text(e))
        return
    probs = []
    for p in range(PARTITIONS):
        want_end = 1 + max([r["offset"] for r in exp if r["partition"] == p], default=-1)
        if begins[p] != 0:
            probs.append(f"partition {p}: earliest offset {begins[p]}, expected 0")
        if ends[p] != want_end:
            probs.append(f"partition {p}: end offset {ends[p]}, expected {want_end}")
        if len(got[p]) != want_end:
            probs.append(f"partition {p}: consumed {len(got[p])} records, expected {want_end}")
    rep.check("consume_all", probs)
    by = {(m.partition, m.offset): m for p in got for m in got[p]}
    for codec in ["timestamps"] + CODECS + ["large"]:
        name = f"content_{codec}"
        rs = [r for r in exp if r["codec"] == codec]
        if not rs:
            rep.fail(name, "nothing was acknowledged in the produce phase")
            continue
        probs = []
        for r in rs:
            m = by.get((r["partition"], r["offset"]))
            where = f"partition {r['partition']} offset {r['offset']}"
            if m is None:
                probs.append(f"{where}: missing")
                continue
            if m.key != unb64(r["key"]):
                probs.append(f"{where}: key {m.key!r:.40}, expected {unb64(r['key'])!r:.40}")
            if m.value != unb64(r["value"]):
                probs.append(f"{where}: value {m.value!r:.40}, expected {unb64(r['value'])!r:.40}")
            want_h = [(k, unb64(v)) for k, v in r["headers"]]
            got_h = [(k, v) for k, v in (m.headers or [])]
            if got_h != want_h:
                probs.append(f"{where}: headers {got_h!r:.80}, expected {want_h!r:.80}")
        rep.check(name, probs)
    probs = []
    for p in range(PARTITIONS):
        offs = [m.offset for m in got[p]]
        if offs != list(range(len(offs))):
            probs.append(f"partition {p}: offsets not 0..{len(offs) - 1} in order")
        acked = sorted((r["offset"], r["group"], r["seq"]) for r in exp if r["partition"] == p)
        # produce order within each produce call = offset order
        for group in set(a[1] for a in acked):
            seqs = [s for _, g, s in acked if g == group]
            if seqs != sorted(seqs):
                probs.append(f"partition {p}: {group} records out of produce order")
    rep.check("partition_order", probs)
    probs = []
    for r in exp:
        m = by.get((r["partition"], r["offset"]))
        if m is None:
            continue
        if m.timestamp_type != 0:
            probs.append(f"partition {r['partition']} offset {r['offset']}: timestamp type {m.timestamp_type}")
        if r["codec"] == "timestamps":
            if m.timestamp != r["timestamp"]:
                probs.append(f"partition {r['partition']} offset {r['offset']}: timestamp {m.timestamp}, expected {r['timestamp']}")
        elif r["codec"] in st["windows"]:
            lo, hi = st["windows"][r["codec"]]
            if not lo - 1000 <= m.timestamp <= hi + 1000:
                probs.append(f"partition {r['partition']} offset {r['offset']}: timestamp {m.timestamp} outside the produce window {lo}..{hi}")
    rep.check("record_timestamps", probs)
    verify_times(bootstrap, st, rep, got)


def verify_times(bootstrap, st, rep, got):
    """ListOffsets by timestamp; the expected answer computed from the log as consumed:
    the first offset whose timestamp >= the asked one (None past the end)."""
    topic = st["topic"]
    ts_recs = [r for r in st["records"] if r["codec"] == "timestamps"]
    if not ts_recs:
        for n in ["offsets_for_times", "offsets_for_times_compressed"]:
            rep.fail(n, "no timestamped records were acknowledged")
        return
    plain, compressed = [], []  # (partition, timestamp)
    for p in range(PARTITIONS):
        rs = sorted([r for r in ts_recs if r["partition"] == p], key=lambda r: r["offset"])
        if not rs:
            continue
        plain.append((p, rs[0]["timestamp"] - 5000))          # before the start
        plain.append((p, rs[1]["timestamp"]))                 # exact
        plain.append((p, rs[2]["timestamp"] - 500))           # between two uncompressed records
        plain.append((p, max(m.timestamp for m in got[p]) + 3_600_000))  # past the end
        z = [r for r in rs if r.get("batch_codec") == "zstd"]
        if len(z) >= 3:
            compressed.append((p, z[2]["timestamp"] - 500))   # inside the zstd batch
            compressed.append((p, z[3]["timestamp"]))
        for codec in ["gzip", "snappy", "lz4"]:
            cs = sorted([m for m in got[p] if m.headers and ("codec", codec.encode()) in m.headers],
                        key=lambda m: m.offset)
            if len(cs) >= 4 and cs[3].timestamp > cs[0].timestamp:
                compressed.append((p, cs[3].timestamp))

    def expected(p, ts):
        for m in sorted(got[p], key=lambda m: m.offset):
            if m.timestamp >= ts:
                return m.offset
        return None

    c = consumer(bootstrap)
    try:
        for name, asks in [("offsets_for_times", plain), ("offsets_for_times_compressed", compressed)]:
            probs = []
            for p, ts in asks:
                tp = TopicPartition(topic, p)
                try:
                    ans = c.offsets_for_times({tp: ts})[tp]
                except Exception as e:  # noqa: BLE001
                    probs.append(f"partition {p} ts {ts}: {err_text(e)}")
                    continue
                want = expected(p, ts)
                off = None if ans is None else ans.offset
                if off != want:
                    probs.append(f"partition {p} timestamp {ts}: offset {off}, expected {want}")
            if not asks:
                probs.append("nothing to ask")
            rep.check(name, probs)
    finally:
        c.close()


def verify_idempotent(bootstrap, st, rep):
    if not st.get("idem_records"):
        rep.fail("idempotent_log", "nothing was produced idempotently in the produce phase")
        return
    try:
        got, _, ends = consume_range(bootstrap, st["idem_topic"], 2)
    except Exception as e:  # noqa: BLE001
        rep.fail("idempotent_log", err_text(e))
        return
    probs = []
    for p in (0, 1):
        want = [unb64(r["value"]) for r in sorted(st["idem_records"], key=lambda r: r["seq"]) if r["partition"] == p]
        have = [m.value for m in got[p]]
        if have != want:
            probs.append(f"partition {p}: {len(have)} records, expected {len(want)} exactly once in order")
    rep.check("idempotent_log", probs)


def basic_cleanup(bootstrap, st, rep):
    topics = [t for t, k in [(st["topic"], "created"), (st["idem_topic"], "idem_created"),
                             (st["admin_topic"], "admin_created")] if st.get(k)]
    if not topics:
        rep.fail("delete_topic", "no topic was created in the produce phase")
        return
    delete_topics(bootstrap, topics, rep, "delete_topic")


def delete_topics(bootstrap, topics, rep, name):
    a = admin(bootstrap)
    try:
        a.delete_topics(topics)
    except Exception as e:  # noqa: BLE001
        rep.fail(name, f"DeleteTopics {topics}: {err_text(e)}")
        a.close()
        return
    deadline = time.monotonic() + 20
    left = topics
    while time.monotonic() < deadline:
        left = [t for t in topics if t in a.list_topics()]
        if not left:
            break
        time.sleep(0.5)
    a.close()
    rep.check(name, [f"deleted, but 20s later still in Metadata: {left}"] if left else [])


# ----------------------------------------------------------------------------- groups

class Member:
    """One KafkaConsumer in the group, polled on its own thread; calls run on that thread."""

    def __init__(self, name, bootstrap, group, topic):
        self.name = name
        self.records = []          # (partition, offset, value)
        self.assignment = set()
        self.error = None
        self.calls = queue.Queue()
        self.stop = False
        self.started = False   # until the group has formed, partitions stay paused
        self.c = consumer(bootstrap, group_id=group, client_id=f"{CLIENT_ID}-{name}",
                          session_timeout_ms=10000, heartbeat_interval_ms=1000,
                          max_poll_interval_ms=60000)
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                pass

            def on_partitions_assigned(self, assigned):
                if not member.started and assigned:
                    member.c.pause(*assigned)

        self.c.subscribe([topic], listener=Listener())
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                while True:
                    fn, box = self.calls.get_nowait()
                    try:
                        box.append(("ok", fn(self.c)))
                    except Exception as e:  # noqa: BLE001
                        box.append(("err", e))
            except queue.Empty:
                pass
            try:
                for tp, msgs in self.c.poll(timeout_ms=200).items():
                    self.records += [(m.partition, m.offset, m.value) for m in msgs]
                self.assignment = {tp.partition for tp in self.c.assignment()}
            except Exception as e:  # noqa: BLE001
                self.error = e
                time.sleep(0.2)

    def start(self):
        def fn(c):
            self.started = True
            c.resume(*c.paused())
        self.call(fn)

    def call(self, fn, timeout=30):
        box = []
        self.calls.put((fn, box))
        deadline = time.monotonic() + timeout
        while not box and time.monotonic() < deadline:
            time.sleep(0.05)
        if not box:
            raise TimeoutError(f"{self.name}: call did not run within {timeout}s")
        kind, val = box[0]
        if kind == "err":
            raise val
        return val

    def close(self):
        self.call(lambda c: c.close(autocommit=False))
        self.stop = True
        self.t.join(5)


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def assign_problems(members, n=GROUP_PARTITIONS):
    sets = [m.assignment for m in members]
    probs = []
    if any(not s for s in sets):
        probs.append("a member has no partitions")
    allp = [p for s in sets for p in s]
    if len(allp) != len(set(allp)):
        probs.append("overlapping assignments")
    if set(allp) != set(range(n)):
        probs.append(f"together {sorted(set(allp))}, expected 0..{n - 1}")
    return probs


def show(members):
    return ", ".join(f"{m.name}: {sorted(m.assignment)}" for m in members)


def group_produce_batch(bootstrap, topic, per_partition, tag):
    p = producer(bootstrap, linger_ms=10)
    try:
        recs = [{"key": f"k{part}-{i}".encode(), "value": f"{tag}-{part}-{i}".encode(), "headers": [],
                 "partition": part} for part in range(GROUP_PARTITIONS) for i in range(per_partition)]
        acked, probs = send_all(p, topic, tag, tag, recs)
        return probs
    finally:
        p.close(timeout=10)


def commit_all(m):
    """Commit each owned partition at its position; returns {partition: offset}."""
    def fn(c):
        offs = {tp: OffsetAndMetadata(c.position(tp), "", -1) for tp in c.assignment()}
        c.commit(offs)
        return {tp.partition: o.offset for tp, o in offs.items()}
    return m.call(fn)


def committed_of(bootstrap, group, topic):
    a = admin(bootstrap)
    try:
        got = a.list_consumer_group_offsets(group)
    finally:
        a.close()
    return {tp.partition: om.offset for tp, om in got.items() if tp.topic == topic}


def groups_produce(bootstrap, st, rep):
    why = create_topic(bootstrap, st["group_topic"], GROUP_PARTITIONS, {})
    st["group_created"] = not why
    rep.check("group_create_topic", [why] if why else [])
    if why:
        return False
    probs = group_produce_batch(bootstrap, st["group_topic"], GROUP_PER_PARTITION, "first")
    rep.check("group_produce", probs)
    return not probs


def list_state(bootstrap, group):
    a = admin(bootstrap)
    try:
        d = a.describe_consumer_groups([group])[0]
        listed = [g for g in a.list_consumer_groups() if g[0] == group]
        return d, listed
    finally:
        a.close()


def groups_verify(bootstrap, st, rep):
    topic, group = st["group_topic"], st["group"]
    members = [Member(n, bootstrap, group, topic) for n in ("a", "b", "c")]
    try:
        ok = wait_until(lambda: not assign_problems(members), 45)
        rep.check("group_join", [] if ok else [f"3 members did not share {GROUP_PARTITIONS} partitions within 45s: {show(members)}"
                                               + (f" (error {err_text(members[0].error)})" if members[0].error else "")])
        if not ok:
            return
        first = {m.name: set(m.assignment) for m in members}
        for m in members:
            m.start()
        want = GROUP_PARTITIONS * GROUP_PER_PARTITION
        wait_until(lambda: sum(len(m.records) for m in members) >= want, 30)
        probs = []
        seen = [(p, o) for m in members for p, o, _ in m.records]
        if len(seen) != want or len(set(seen)) != want:
            probs.append(f"{len(seen)} records ({len(set(seen))} distinct), expected {want}")
        for m in members:
            stray = {p for p, _, _ in m.records} - first[m.name]
            if stray:
                probs.append(f"{m.name} read partitions {sorted(stray)} it does not own")
            if m.assignment != first[m.name]:
                probs.append(f"{m.name}: assignment changed to {sorted(m.assignment)}")
        rep.check("group_consume", probs)
        probs = []
        try:
            for m in members:
                commit_all(m)
            got = committed_of(bootstrap, group, topic)
            if got != {p: GROUP_PER_PARTITION for p in range(GROUP_PARTITIONS)}:
                probs.append(f"committed {got}, expected {GROUP_PER_PARTITION} on every partition")
            cm = members[0].call(lambda c: {tp.partition: c.committed(tp) for tp in c.assignment()})
            if any(v != GROUP_PER_PARTITION for v in cm.values()):
                probs.append(f"committed() in member a: {cm}")
        except Exception as e:  # noqa: BLE001
            probs.append(f"commit: {err_text(e)}")
        rep.check("group_commit", probs)
        c = members.pop()
        c.close()
        ok = wait_until(lambda: not assign_problems(members), 45)
        rep.check("group_leave_rebalance", [] if ok else [f"after c left, the other two did not take all partitions within 45s: {show(members)}"])
        before = {m.name: len(m.records) for m in members}
        probs = group_produce_batch(bootstrap, topic, GROUP_MORE, "more")
        total = GROUP_PARTITIONS * GROUP_MORE
        wait_until(lambda: sum(len(m.records) - before[m.name] for m in members) >= total, 30)
        time.sleep(0.5)
        new = [(p, o) for m in members for p, o, _ in m.records[before[m.name]:]]
        want_set = {(p, o) for p in range(GROUP_PARTITIONS)
                    for o in range(GROUP_PER_PARTITION, GROUP_PER_PARTITION + GROUP_MORE)}
        if sorted(new) != sorted(want_set):
            extra = sorted(set(new) - want_set)[:3]
            probs.append(f"read {len(new)} records after the rebalance, expected exactly the {total} new ones"
                         + (f" (e.g. re-read {extra})" if extra else ""))
        rep.check("group_resume_after_rebalance", probs)
        try:
            d, listed = list_state(bootstrap, group)
            probs = []
            if not listed:
                probs.append("group not in list_consumer_groups()")
            if d.state != "Stable":
                probs.append(f"state {d.state}, expected Stable")
            rep.check("group_list", probs)
            probs = []
            if d.protocol != "range":
                probs.append(f"protocol {d.protocol}, expected range")
            if len(d.members) != 2:
                probs.append(f"{len(d.members)} members, expected 2")
            assigned = sorted(p for mem in d.members
                              for t, ps in (mem.member_assignment.assignment if mem.member_assignment else [])
                              for p in ps)
            if assigned != list(range(GROUP_PARTITIONS)):
                probs.append(f"member assignments cover {assigned}")
            if any(not mem.client_id.startswith(CLIENT_ID) for mem in d.members):
                probs.append(f"client ids {[mem.client_id for mem in d.members]}")
            rep.check("group_describe", probs)
        except Exception as e:  # noqa: BLE001
            rep.fail("group_list", err_text(e))
            rep.fail("group_describe", err_text(e))
        probs = []
        try:
            for m in members:
                commit_all(m)
            got = committed_of(bootstrap, group, topic)
            want_c = {p: GROUP_PER_PARTITION + GROUP_MORE for p in range(GROUP_PARTITIONS)}
            if got != want_c:
                probs.append(f"committed {got}, expected {want_c}")
        except Exception as e:  # noqa: BLE001
            probs.append(f"commit: {err_text(e)}")
        rep.check("group_commit_before_restart", probs)
        probs = group_produce_batch(bootstrap, topic, GROUP_AFTER_RESTART, "after")
        rep.check("group_produce_more", probs)
        probs = []
        for m in members:
            try:
                m.close()
            except Exception as e:  # noqa: BLE001
                probs.append(f"{m.name}.close(): {err_text(e)}")
        members.clear()
        ok = wait_until(lambda: list_state(bootstrap, group)[0].state == "Empty", 15)
        if not ok:
            probs.append(f"group state {list_state(bootstrap, group)[0].state}, expected Empty")
        rep.check("group_close", probs)
    finally:
        for m in members:
            m.stop = True


def groups_restart_verify(bootstrap, st, rep):
    topic, group = st["group_topic"], st["group"]
    base = GROUP_PER_PARTITION + GROUP_MORE
    why = wait_topic(bootstrap, topic, GROUP_PARTITIONS, 30)
    try:
        got = committed_of(bootstrap, group, topic)
        want = {p: base for p in range(GROUP_PARTITIONS)}
        rep.check("group_committed_after_restart", ([why] if why else []) + ([f"committed {got}, expected {want}"] if got != want else []))
    except Exception as e:  # noqa: BLE001
        rep.fail("group_committed_after_restart", err_text(e))
    d = Member("d", bootstrap, group, topic)
    d.started = True
    try:
        total = GROUP_PARTITIONS * GROUP_AFTER_RESTART
        wait_until(lambda: len(d.records) >= total, 45)
        time.sleep(0.5)
        got = sorted((p, o) for p, o, _ in d.records)
        want = sorted((p, o) for p in range(GROUP_PARTITIONS) for o in range(base, base + GROUP_AFTER_RESTART))
        probs = [] if got == want else [f"read {len(got)} records (first {got[:2]}), expected exactly the {total} produced before the restart at offsets {base}.."]
        if d.error:
            probs.append(f"consumer error {err_text(d.error)}")
        rep.check("group_resume_after_restart", probs)
        probs = []
        try:
            commit_all(d)
            d.close()
        except Exception as e:  # noqa: BLE001
            probs.append(err_text(e))
        rep.check("group_close", probs)
    finally:
        d.stop = True


def groups_cleanup(bootstrap, st, rep):
    topic, group = st["group_topic"], st["group"]
    want = {p: GROUP_PER_PARTITION + GROUP_MORE + GROUP_AFTER_RESTART for p in range(GROUP_PARTITIONS)}
    try:
        got = committed_of(bootstrap, group, topic)
        a = admin(bootstrap)
        try:
            some = a.list_consumer_group_offsets(group, partitions=[TopicPartition(topic, 0), TopicPartition(topic, 5)])
        finally:
            a.close()
        probs = [] if got == want else [f"committed {got}, expected {want}"]
        some_p = {tp.partition: om.offset for tp, om in some.items()}
        if some_p != {0: want[0], 5: want[5]}:
            probs.append(f"named partitions: {some_p}")
        rep.check("group_list_offsets", probs)
    except Exception as e:  # noqa: BLE001
        rep.fail("group_list_offsets", err_text(e))
    a = admin(bootstrap)
    try:
        res = a.delete_consumer_groups([group])
        probs = [f"delete_consumer_groups: {r}" for r in res
                 if getattr(r[1], "__name__", r[1]) != "NoError"]
        if any(g[0] == group for g in a.list_consumer_groups()):
            probs.append("still listed")
        left = committed_of(bootstrap, group, topic)
        if left:
            probs.append(f"offsets still there: {left}")
        rep.check("group_delete", probs)
    except Exception as e:  # noqa: BLE001
        rep.fail("group_delete", err_text(e))
    finally:
        a.close()
    if st.get("group_created"):
        delete_topics(bootstrap, [topic], rep, "group_delete_topic")
    else:
        rep.fail("group_delete_topic", "topic was not created in the produce phase")


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--scenario", choices=["basic", "groups"], default="basic")
    ap.add_argument("--phase", default="all", choices=["all", "produce", "verify", "restart-verify", "cleanup"])
    ap.add_argument("--state")
    args = ap.parse_args()
    rep = Report()
    st = None
    if args.state and os.path.exists(args.state) and args.phase not in ("all", "produce"):
        with open(args.state) as f:
            st = json.load(f)
    if st is None:
        sfx = uuid.uuid4().hex[:8]
        st = {"topic": f"compat-kpy-{sfx}", "idem_topic": f"compat-kpy-idem-{sfx}",
              "admin_topic": f"compat-kpy-admin-{sfx}", "group_topic": f"compat-kpy-group-{sfx}",
              "group": f"compat-kpy-group-{sfx}", "records": [], "windows": {}, "idem_records": []}
    phases = {"basic": {"produce": basic_produce, "verify": basic_verify, "restart-verify": basic_verify,
                        "cleanup": basic_cleanup},
              "groups": {"produce": groups_produce, "verify": groups_verify,
                         "restart-verify": groups_restart_verify, "cleanup": groups_cleanup}}[args.scenario]
    order = ["produce", "verify", "restart-verify", "cleanup"] if args.phase == "all" else [args.phase]
    for ph in order:
        try:
            phases[ph](args.bootstrap, st, rep)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            rep.fail(f"{ph}_phase", f"scenario crashed: {err_text(e)}")
        if args.state:
            with open(args.state, "w") as f:
                json.dump(st, f)
    sys.exit(1 if rep.failures else 0)


if __name__ == "__main__":
    main()
