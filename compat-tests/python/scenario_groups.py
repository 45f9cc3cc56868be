#!/usr/bin/env python3
"""Consumer-group compatibility scenario for confluent-kafka (librdkafka) against a Kafka broker.

Usage:
    scenario_groups.py BOOTSTRAP [--phase all|produce|verify|restart-verify|cleanup] [--state FILE]

Phases (run.sh restarts the broker between `verify` and `restart-verify`):
  produce         create a 6-partition topic, produce 600 keyed records (100 per partition).
  verify          three consumers in one group (classic protocol, auto-commit off) split the
                  partitions and read every record exactly once, commit; one leaves (close())
                  and the other two take over its partitions and resume from the committed
                  offsets; admin list/describe the group, delete must fail while it has members;
                  commit, produce 120 more records, close both consumers.
  restart-verify  a fresh consumer sees the committed offsets (they survived the restart),
                  joins the group and reads exactly the 120 new records; list/describe again;
                  commit; close.
  cleanup         admin: list the group's committed offsets, delete the group, delete the topic.
  all             every phase in a row, without a restart (the default).

Prints one line per check, `PASS name` or `FAIL name: why`, and exits non-zero if any check
failed. A failed check that later checks depend on ends the phase (run.sh then shows the
remaining checks as `not run`).
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
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
# replication factor of the topics created: COMPAT_REPLICATION_FACTOR (run.sh --cluster: 3)
try:
    REPLICATION_FACTOR = int(os.environ.get("COMPAT_REPLICATION_FACTOR") or 1)
except ValueError:
    REPLICATION_FACTOR = 0
if REPLICATION_FACTOR < 1:
    sys.exit(f"bad COMPAT_REPLICATION_FACTOR: {os.environ.get('COMPAT_REPLICATION_FACTOR')!r}")
FIRST_BATCH = 600          # produce phase
REBALANCE_BATCH = 120      # verify: read by the two consumers left after the leave
RESTART_BATCH = 120        # verify: produced after the last commit, read after the restart
SESSION_TIMEOUT_MS = 10000
HEARTBEAT_MS = 1000
REQUEST_TIMEOUT = 15       # seconds, admin requests and blocking consumer calls
JOIN_TIMEOUT = 45          # seconds to reach a stable assignment
CONSUME_TIMEOUT = 30       # seconds to read an expected batch


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
LOGGER = logging.getLogger("librdkafka-groups")
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

    def check(self, name, problems, fatal=False, note=None):
        """problems: list of strings, empty means pass. fatal: raise Stop on failure."""
        if problems:
            extra = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
            self.fail(name, "; ".join(problems[:4]) + extra)
            if fatal:
                raise Stop(name)
        else:
            self.ok(name, note)


def err_text(err):
    if err is None:
        return "no error"
    if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
        err = err.args[0]
    if isinstance(err, KafkaError):
        return f"{err.name()} ({err.code()}): {err.str()}"
    return repr(err)


def parts_text(parts):
    return "[" + ",".join(str(p) for p in sorted(parts)) + "]"


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
    return AdminClient(common_conf(bootstrap, "compat-groups-admin"))


def wait_topic_ready(admin, topic, timeout=30.0):
    """None once the topic shows PARTITIONS partitions with leaders, else what was wrong."""
    deadline = time.monotonic() + timeout
    last = "no metadata"
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=5)
            tm = md.topics.get(topic)
            if tm is None:
                last = "topic not in metadata"
            elif tm.error is not None:
                last = f"topic error {err_text(tm.error)}"
            elif len(tm.partitions) != PARTITIONS:
                last = f"{len(tm.partitions)} partitions, expected {PARTITIONS}"
            elif any(pm.error is not None or pm.leader not in md.brokers
                     for pm in tm.partitions.values()):
                last = "a partition has no leader"
            else:
                return None
        except KafkaException as e:
            last = f"list_topics: {err_text(e)}"
        time.sleep(0.3)
    return last


class Member:
    """One group consumer. Records what it received per assignment generation."""

    def __init__(self, name, bootstrap, group, topic):
        self.name = name
        self.topic = topic
        self.generation = 0            # counts on_assign calls
        self.assigned = set()
        self.records = []              # (generation, partition, offset, key, value)
        self.errors = []
        self.closed = False
        self.c = Consumer({
            **common_conf(bootstrap, f"compat-groups-{name}"),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "error_cb": self._on_error,
        })

    def subscribe(self):
        self.c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                         on_lost=self._on_revoke)

    def _on_error(self, err):
        self.errors.append(err_text(err))

    def _on_assign(self, consumer, parts):
        consumer.assign(parts)
        self.generation += 1
        self.assigned = {tp.partition for tp in parts if tp.topic == self.topic}

    def _on_revoke(self, consumer, parts):
        consumer.unassign()
        self.assigned = set()

    def pump(self, timeout):
        for m in self.c.consume(num_messages=500, timeout=timeout):
            if m.error():
                self.errors.append(err_text(m.error()))
                continue
            self.records.append((self.generation, m.partition(), m.offset(),
                                 (m.key() or b"").decode(), (m.value() or b"").decode()))

    def since(self, generation):
        return [r[1:] for r in self.records if r[0] >= generation]

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()

    def member_id(self):
        try:
            return self.c.memberid()
        except (KafkaException, RuntimeError):
            return None


def drive(members, until, timeout):
    """Serve every member (callbacks, messages) until until() holds. Returns True if it did."""
    deadline = time.monotonic() + timeout
    while True:
        for m in members:
            m.pump(0.05)
        if until():
            return True
        if time.monotonic() > deadline:
            return False


def errors_of(members):
    errs = [f"{m.name}: {e}" for m in members for e in m.errors[-2:]]
    return f" (client errors: {'; '.join(errs)})" if errs else ""


def assignment_problems(members):
    """Why the members' assignments are not a partition of all PARTITIONS partitions."""
    problems = []
    seen = {}
    for m in members:
        if not m.assigned:
            problems.append(f"{m.name} has no partitions")
        for p in m.assigned:
            if p in seen:
                problems.append(f"partition {p} assigned to both {seen[p]} and {m.name}")
            seen[p] = m.name
    missing = set(range(PARTITIONS)) - set(seen)
    if missing:
        problems.append(f"partitions {parts_text(missing)} assigned to nobody")
    return problems


def show_assignment(members):
    return ", ".join(f"{m.name}={parts_text(m.assigned)}" for m in members)


# ----------------------------------------------------------------------------- produce / compare

def produce(bootstrap, topic, batch, count):
    """count keyed records, partition i % PARTITIONS. Returns (records, problems)."""
    acked, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.key().decode()}: {err_text(err)}")
        else:
            acked.append({"p": msg.partition(), "o": msg.offset(), "k": msg.key().decode(),
                          "v": msg.value().decode(), "batch": batch})

    prod = Producer({**common_conf(bootstrap, "compat-groups-producer"), "acks": "all",
                     "linger.ms": 5, "message.timeout.ms": 30000})
    for i in range(count):
        while True:
            try:
                prod.produce(topic, key=f"k-{batch}-{i:04d}", value=f"{batch}-{i:04d}",
                             partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    left = prod.flush(40)
    problems = []
    if left:
        problems.append(f"{left} records still unacknowledged after 40s")
    if errors:
        problems.append(f"{len(errors)} delivery errors, first: {errors[0]}")
    if not problems and len(acked) != count:
        problems.append(f"{len(acked)} of {count} acknowledged")
    return acked, problems


def end_offsets(records):
    ends = {p: 0 for p in range(PARTITIONS)}
    for r in records:
        ends[r["p"]] = max(ends[r["p"]], r["o"] + 1)
    return ends


def compare(got, expected, everything):
    """got: [(member, partition, offset, key, value)]; expected: the records that must be read,
    each once; everything: every record produced so far (to name re-read old records)."""
    problems = []
    by_pos = {(r["p"], r["o"]): r for r in everything}
    want = {(r["p"], r["o"]) for r in expected}
    seen = {}
    old = []
    for member, p, o, k, v in got:
        pos = (p, o)
        if pos in seen:
            problems.append(f"p{p}@{o} delivered twice (to {seen[pos]} and {member})")
        seen[pos] = member
        r = by_pos.get(pos)
        if r is None:
            problems.append(f"p{p}@{o} ({k}={v}) was never produced")
        elif pos not in want:
            old.append(f"p{p}@{o} {r['v']}")
        elif (k, v) != (r["k"], r["v"]):
            problems.append(f"p{p}@{o} is {k}={v}, the producer wrote {r['k']}={r['v']}")
    if old:
        problems.insert(0, f"{len(old)} records from before the committed offsets were read "
                           f"again (first: {', '.join(old[:3])})")
    missing = sorted(want - set(seen))
    if missing:
        problems.insert(0, f"{len(missing)} of {len(want)} expected records never arrived "
                           f"(first: {', '.join(f'p{p}@{o}' for p, o in missing[:3])})")
    return problems


def read_batch(members, expected, generations, timeout=CONSUME_TIMEOUT):
    """Drive members until every expected record arrived (in the members' current generation
    or later). Returns what they received as [(member, p, o, k, v)]."""
    want = {(r["p"], r["o"]) for r in expected}

    def got():
        return [(m.name,) + rec for m in members for rec in m.since(generations[m.name])]

    drive(members, lambda: want <= {(g[1], g[2]) for g in got()}, timeout)
    return got()


def check_reassigned(members, generations):
    return [f"{m.name} was assigned again while reading (generation {generations[m.name]} -> "
            f"{m.generation}): an unexpected rebalance" for m in members
            if m.generation != generations[m.name]]


def commit_and_check(members, topic, ends):
    """Sync commit on each member, then committed() on its partitions must equal ends.
    Returns (problems, {partition: committed offset})."""
    problems, committed = [], {}
    for m in members:
        try:
            result = m.c.commit(asynchronous=False)
            for tp in result or []:
                if tp.error is not None:
                    problems.append(f"{m.name} commit p{tp.partition}: {err_text(tp.error)}")
        except KafkaException as e:
            problems.append(f"{m.name} commit(asynchronous=False): {err_text(e)}")
            continue
        try:
            tps = m.c.committed([TopicPartition(topic, p) for p in sorted(m.assigned)],
                                timeout=REQUEST_TIMEOUT)
        except KafkaException as e:
            problems.append(f"{m.name} committed(): {err_text(e)}")
            continue
        for tp in tps:
            if tp.error is not None:
                problems.append(f"{m.name} committed() p{tp.partition}: {err_text(tp.error)}")
            else:
                committed[tp.partition] = tp.offset
    for p in range(PARTITIONS):
        if p not in committed:
            if not problems:
                problems.append(f"partition {p}: no member committed it")
        elif committed[p] != ends[p]:
            problems.append(f"partition {p}: committed() says {committed[p]}, the consumers "
                            f"read up to {ends[p]}")
    return problems, committed


# ----------------------------------------------------------------------------- admin checks

def find_listing(admin, group, states=None):
    kwargs = {"request_timeout": REQUEST_TIMEOUT}
    if states is not None:
        kwargs["states"] = states
    res = admin.list_consumer_groups(**kwargs).result(timeout=REQUEST_TIMEOUT + 5)
    errors = [err_text(e) for e in (res.errors or [])]
    return next((g for g in res.valid if g.group_id == group), None), errors


def check_list(rep, admin, group, want_state, name="group_list", timeout=10.0):
    """list_consumer_groups shows the group in want_state; the states filter works."""
    deadline = time.monotonic() + timeout
    while True:
        problems = []
        try:
            listing, errors = find_listing(admin, group)
            if errors:
                problems.append(f"list_consumer_groups errors: {'; '.join(errors)}")
            if listing is None:
                problems.append("group not in list_consumer_groups()")
            elif listing.state != want_state:
                problems.append(f"state {listing.state.name}, expected {want_state.name}")
            elif listing.is_simple_consumer_group:
                problems.append("listed as a simple consumer group (protocol type not 'consumer')")
            if not problems:
                inside, _ = find_listing(admin, group, states={want_state})
                other = (ConsumerGroupState.EMPTY if want_state != ConsumerGroupState.EMPTY
                         else ConsumerGroupState.STABLE)
                outside, _ = find_listing(admin, group, states={other})
                if inside is None:
                    problems.append(f"missing from list_consumer_groups(states={{{want_state.name}}})")
                if outside is not None:
                    problems.append(f"listed by list_consumer_groups(states={{{other.name}}})")
        except KafkaException as e:
            problems.append(f"list_consumer_groups: {err_text(e)}")
        except Exception as e:  # noqa: BLE001 - a timeout of the future, mostly
            problems.append(f"list_consumer_groups: {e!r}")
        if not problems or time.monotonic() > deadline:
            rep.check(name, problems, note=f"state {want_state.name}" if not problems else None)
            return not problems
        time.sleep(0.3)


def check_describe(rep, admin, group, topic, members, name="group_describe"):
    """describe_consumer_groups: Stable, the members' ids/client ids/assignments, range."""
    problems = []
    try:
        d = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)[group] \
            .result(timeout=REQUEST_TIMEOUT + 5)
    except KafkaException as e:
        rep.check(name, [f"describe_consumer_groups: {err_text(e)}"])
        return
    except Exception as e:  # noqa: BLE001
        rep.check(name, [f"describe_consumer_groups: {e!r}"])
        return
    if d.state != ConsumerGroupState.STABLE:
        problems.append(f"state {d.state.name}, expected STABLE")
    if d.is_simple_consumer_group:
        problems.append("described as a simple consumer group")
    if d.partition_assignor != "range":
        problems.append(f"partition_assignor {d.partition_assignor!r}, expected 'range' "
                        "(every member's first choice)")
    if len(d.members) != len(members):
        problems.append(f"{len(d.members)} members, expected {len(members)}")
    by_client = {f"compat-groups-{m.name}": m for m in members}
    for md in d.members:
        m = by_client.get(md.client_id)
        if m is None:
            problems.append(f"unexpected member client_id {md.client_id!r}")
            continue
        mid = m.member_id()
        if mid and md.member_id != mid:
            problems.append(f"{m.name}: member_id {md.member_id!r}, the consumer has {mid!r}")
        got = {tp.partition for tp in (md.assignment.topic_partitions if md.assignment else [])
               if tp.topic == topic}
        if got != m.assigned:
            problems.append(f"{m.name}: described assignment {parts_text(got)}, the consumer "
                            f"has {parts_text(m.assigned)}")
    rep.check(name, problems,
              note=f"{len(d.members)} members, {d.state.name}, {d.partition_assignor}"
              if not problems else None)


def list_offsets(admin, group, topic, partitions=None):
    """{partition: offset} from list_consumer_group_offsets (None partitions: all of them)."""
    tps = None if partitions is None else [TopicPartition(topic, p) for p in partitions]
    req = ConsumerGroupTopicPartitions(group, tps)
    res = admin.list_consumer_group_offsets([req], request_timeout=REQUEST_TIMEOUT)[group] \
        .result(timeout=REQUEST_TIMEOUT + 5)
    out, errors = {}, []
    for tp in res.topic_partitions or []:
        if tp.topic != topic:
            continue
        if tp.error is not None:
            errors.append(f"p{tp.partition}: {err_text(tp.error)}")
        else:
            out[tp.partition] = tp.offset
    return out, errors


# ----------------------------------------------------------------------------- phases

def phase_produce(bootstrap, state, rep):
    admin = admin_client(bootstrap)
    topic = state["topic"]
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=REPLICATION_FACTOR)],
                            operation_timeout=15, request_timeout=20)[topic].result(timeout=30)
        state["created"] = True
    except KafkaException as e:
        rep.check("group_create_topic", [f"CreateTopics: {err_text(e)}"], fatal=True)
    why = wait_topic_ready(admin, topic)
    rep.check("group_create_topic", [why] if why else [], fatal=True)

    records, problems = produce(bootstrap, topic, "first", FIRST_BATCH)
    state["records"] = records
    rep.check("group_produce", problems, fatal=True)


def phase_verify(bootstrap, state, rep):
    topic, group = state["topic"], state["group"]
    if not state.get("records"):
        rep.check("group_join", ["nothing was produced in the produce phase"], fatal=True)
    records = state["records"]
    admin = admin_client(bootstrap)
    members = [Member(n, bootstrap, group, topic) for n in ("a", "b", "c")]
    try:
        _verify(bootstrap, state, rep, admin, members, records)
    finally:
        for m in members:
            try:
                m.close()
            except Exception:  # noqa: BLE001 - closing after a failure
                pass


def _verify(bootstrap, state, rep, admin, members, records):
    topic, group = state["topic"], state["group"]
    a, b, c = members

    # -- three members: each a non-empty, disjoint share; together all partitions
    for m in members:
        m.subscribe()
    t0 = time.monotonic()
    stable = drive(members, lambda: not assignment_problems(members), JOIN_TIMEOUT)
    took = time.monotonic() - t0
    rep.check("group_join",
              [] if stable else [f"no stable assignment after {JOIN_TIMEOUT}s: "
                                 + "; ".join(assignment_problems(members))
                                 + f" ({show_assignment(members)})" + errors_of(members)],
              fatal=True, note=f"{show_assignment(members)} in {took:.1f}s")

    # -- together they read every record exactly once
    gens = {m.name: m.generation for m in members}
    got = read_batch(members, records, gens)
    problems = check_reassigned(members, gens)
    problems += [f"{m.name} got p{p}@{o}, not in its assignment {parts_text(m.assigned)}"
                 for m in members for (p, o, _, _) in m.since(gens[m.name])
                 if p not in m.assigned][:2]
    problems += compare(got, records, records)
    if problems:
        problems[-1] += errors_of(members)
    rep.check("group_consume", problems, fatal=True,
              note=", ".join(f"{m.name} read {len(m.since(gens[m.name]))}" for m in members))

    # -- sync commit; committed() shows it
    ends = end_offsets(records)
    problems, committed = commit_and_check(members, topic, ends)
    rep.check("group_commit", problems, fatal=True)

    # -- c leaves: a and b split all partitions, c's included
    left = set(c.assigned)
    before = {m.name: m.generation for m in (a, b)}
    try:
        c.close()
    except Exception as e:  # noqa: BLE001
        rep.check("group_leave_rebalance", [f"close(): {err_text(e)}"], fatal=True)
    t0 = time.monotonic()
    rest = [a, b]
    stable = drive(rest, lambda: not assignment_problems(rest)
                   and all(m.generation > before[m.name] for m in rest), JOIN_TIMEOUT)
    took = time.monotonic() - t0
    problems = []
    if not stable:
        problems.append(f"{JOIN_TIMEOUT}s after c closed: "
                        + ("; ".join(assignment_problems(rest)) or "no new assignment")
                        + f" ({show_assignment(rest)}; c had {parts_text(left)})"
                        + errors_of(rest))
    rep.check("group_leave_rebalance", problems, fatal=True,
              note=f"c had {parts_text(left)}; now {show_assignment(rest)} in {took:.1f}s")

    # -- the new owners start at the committed offsets: only new records arrive
    gens = {m.name: m.generation for m in rest}
    batch, problems = produce(bootstrap, topic, "rebalance", REBALANCE_BATCH)
    if problems:
        rep.check("group_resume_after_rebalance", [f"producing {REBALANCE_BATCH} more records: "
                                                   + "; ".join(problems)], fatal=True)
    records = records + batch
    state["records"] = records
    got = read_batch(rest, batch, gens)
    problems = check_reassigned(rest, gens) + compare(got, batch, records)
    if problems:
        problems[-1] += errors_of(rest)
    rep.check("group_resume_after_rebalance", problems, fatal=True,
              note=f"{len(got)} records, {', '.join(f'{m.name} read {len(m.since(gens[m.name]))}' for m in rest)}")

    # -- admin view of the active group
    check_list(rep, admin, group, ConsumerGroupState.STABLE)
    check_describe(rep, admin, group, topic, rest)

    # -- deleting a group with members must fail with NON_EMPTY_GROUP
    try:
        admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)[group] \
            .result(timeout=REQUEST_TIMEOUT + 5)
        rep.check("group_delete_nonempty", ["delete_consumer_groups() succeeded on a group with "
                                            "2 active members"])
    except KafkaException as e:
        err = e.args[0] if e.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.NON_EMPTY_GROUP:
            rep.ok("group_delete_nonempty")
        else:
            rep.check("group_delete_nonempty", [f"expected NON_EMPTY_GROUP, got {err_text(e)}"])
    except Exception as e:  # noqa: BLE001
        rep.check("group_delete_nonempty", [f"expected NON_EMPTY_GROUP, got {e!r}"])

    # -- final commit before the restart (recorded), then records the restart must deliver
    problems, committed = commit_and_check(rest, topic, end_offsets(records))
    if not problems:
        state["committed"] = committed
    rep.check("group_commit_before_restart", problems, fatal=True,
              note="committed " + " ".join(f"p{p}={o}" for p, o in sorted(committed.items())))

    batch, problems = produce(bootstrap, topic, "restart", RESTART_BATCH)
    state["records"] = records + batch
    state["restart_batch"] = batch
    rep.check("group_produce_more", problems, fatal=True)

    # -- both leave: the group is Empty (its offsets stay)
    problems = []
    for m in rest:
        try:
            m.close()
        except Exception as e:  # noqa: BLE001
            problems.append(f"{m.name}.close(): {err_text(e)}")
    if problems:
        rep.check("group_close", problems)
    else:
        check_list(rep, admin, group, ConsumerGroupState.EMPTY, name="group_close")


def phase_restart_verify(bootstrap, state, rep):
    topic, group = state["topic"], state["group"]
    if not state.get("committed") or not state.get("restart_batch"):
        rep.check("group_committed_after_restart",
                  ["no committed offsets were recorded in the verify phase"], fatal=True)
    admin = admin_client(bootstrap)
    why = wait_topic_ready(admin, topic)
    if why:
        rep.check("group_committed_after_restart", [f"topic not back after the restart: {why}"],
                  fatal=True)
    d = Member("d", bootstrap, group, topic)
    try:
        _restart_verify(state, rep, admin, d)
    finally:
        try:
            d.close()
        except Exception:  # noqa: BLE001
            pass


def _restart_verify(state, rep, admin, d):
    topic, group = state["topic"], state["group"]
    want = {int(p): o for p, o in state["committed"].items()}

    # -- committed offsets survived the restart (before joining the group)
    deadline = time.monotonic() + 30
    while True:
        problems = []
        try:
            tps = d.c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                timeout=REQUEST_TIMEOUT)
            for tp in tps:
                if tp.error is not None:
                    problems.append(f"p{tp.partition}: {err_text(tp.error)}")
                elif tp.offset != want[tp.partition]:
                    problems.append(f"p{tp.partition}: committed() says {tp.offset}, "
                                    f"{want[tp.partition]} was committed before the restart")
        except KafkaException as e:
            problems.append(f"committed(): {err_text(e)}")
        # retry errors (the coordinator may still be loading), not wrong offsets
        retry = problems and all("committed() says" not in p for p in problems)
        if not retry or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rep.check("group_committed_after_restart", problems)

    # -- a new member resumes from there: exactly the records produced after the commit
    d.subscribe()
    t0 = time.monotonic()
    stable = drive([d], lambda: d.assigned == set(range(PARTITIONS)), JOIN_TIMEOUT)
    if not stable:
        rep.check("group_resume_after_restart",
                  [f"no assignment of all {PARTITIONS} partitions after {JOIN_TIMEOUT}s "
                   f"(d={parts_text(d.assigned)})" + errors_of([d])], fatal=True)
    joined = time.monotonic() - t0
    gens = {"d": d.generation}
    records, batch = state["records"], state["restart_batch"]
    got = read_batch([d], batch, gens)
    problems = check_reassigned([d], gens) + compare(got, batch, records)
    if problems:
        problems[-1] += errors_of([d])
    rep.check("group_resume_after_restart", problems, fatal=True,
              note=f"joined in {joined:.1f}s, read {len(got)} records")

    check_list(rep, admin, group, ConsumerGroupState.STABLE)
    check_describe(rep, admin, group, topic, [d])

    problems, committed = commit_and_check([d], topic, end_offsets(records))
    if not problems:
        state["committed"] = committed
    rep.check("group_commit", problems)

    try:
        d.close()
    except Exception as e:  # noqa: BLE001
        rep.check("group_close", [f"d.close(): {err_text(e)}"])
        return
    check_list(rep, admin, group, ConsumerGroupState.EMPTY, name="group_close")


def phase_cleanup(bootstrap, state, rep):
    topic, group = state["topic"], state["group"]
    admin = admin_client(bootstrap)

    # -- the committed offsets, as the admin client sees them (all partitions, then named ones)
    if state.get("committed"):
        want = {int(p): o for p, o in state["committed"].items()}
        problems = []
        for label, parts in (("all partitions", None), ("named partitions", range(PARTITIONS))):
            try:
                got, errors = list_offsets(admin, group, topic, parts)
                problems += [f"{label}: {e}" for e in errors]
                if got != want:
                    problems.append(f"{label}: {got}, expected {want}")
            except KafkaException as e:
                problems.append(f"{label}: list_consumer_group_offsets: {err_text(e)}")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{label}: list_consumer_group_offsets: {e!r}")
        rep.check("group_list_offsets", problems)
    else:
        rep.check("group_list_offsets", ["no committed offsets were recorded by earlier phases"])

    # -- delete the (empty) group; it disappears with its offsets. A member of a crashed
    #    earlier phase keeps the group non-empty until its session times out: retry that.
    problems = []
    deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000 + 10
    while True:
        try:
            admin.delete_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)[group] \
                .result(timeout=REQUEST_TIMEOUT + 5)
            break
        except KafkaException as e:
            err = e.args[0] if e.args else None
            nonempty = isinstance(err, KafkaError) and err.code() == KafkaError.NON_EMPTY_GROUP
            if not nonempty or time.monotonic() > deadline:
                problems.append(f"delete_consumer_groups: {err_text(e)}")
                break
            time.sleep(0.5)
        except Exception as e:  # noqa: BLE001
            problems.append(f"delete_consumer_groups: {e!r}")
            break
    if not problems:
        try:
            listing, _ = find_listing(admin, group)
            if listing is not None:
                problems.append(f"still listed after the delete (state {listing.state.name})")
            got, errors = list_offsets(admin, group, topic, range(PARTITIONS))
            left = {p: o for p, o in got.items() if o >= 0}
            if left:
                problems.append(f"committed offsets still there after the delete: {left}")
            try:
                d = admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT)[group] \
                    .result(timeout=REQUEST_TIMEOUT + 5)
                if d.state != ConsumerGroupState.DEAD or d.members:
                    problems.append(f"describe after the delete: state {d.state.name}, "
                                    f"{len(d.members)} members (expected DEAD or GROUP_ID_NOT_FOUND)")
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if not (isinstance(err, KafkaError)
                        and err.code() == KafkaError.GROUP_ID_NOT_FOUND):
                    problems.append(f"describe after the delete: {err_text(e)}")
        except KafkaException as e:
            problems.append(f"after the delete: {err_text(e)}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"after the delete: {e!r}")
    rep.check("group_delete", problems)

    # -- the topic
    if not state.get("created"):
        rep.check("group_delete_topic", ["topic was not created in the produce phase"])
        return
    problems = []
    try:
        admin.delete_topics([topic], operation_timeout=15, request_timeout=20)[topic] \
            .result(timeout=30)
        deadline = time.monotonic() + 20
        while topic in admin.list_topics(timeout=5).topics:
            if time.monotonic() > deadline:
                problems.append("deleted, but still in metadata 20s later")
                break
            time.sleep(0.3)
    except KafkaException as e:
        problems.append(f"DeleteTopics: {err_text(e)}")
    rep.check("group_delete_topic", problems)


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
    tmp_dir = None if args.state else tempfile.mkdtemp(prefix="compat-groups-")
    state_file = args.state or os.path.join(tmp_dir, "state.json")

    rep = Report()
    try:
        if args.phase in ("all", "produce"):
            suffix = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
            state = {"topic": f"compat-groups-{suffix}", "group": f"compat-group-{suffix}"}
            with open(state_file, "w") as f:
                json.dump(state, f)
            print(f"# topic {state['topic']} group {state['group']}", flush=True)
        phases = list(PHASES) if args.phase == "all" else [args.phase]
        for phase in phases:
            with open(state_file) as f:
                state = json.load(f)
            try:
                PHASES[phase](args.bootstrap, state, rep)
            except Stop:
                if args.phase == "all":
                    # later phases clean up what they can
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
