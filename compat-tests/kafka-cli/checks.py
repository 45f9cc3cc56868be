#!/usr/bin/env python3
"""Input generation and output checks for compat-tests/kafka-cli/scenario.sh (stdlib only).

Each check prints `PASS name` or `FAIL name: why` (one line) and exits 1 on a failure.

  gen STATE CODEC                  write STATE/input-CODEC.txt (lines "headers<TAB>key<TAB>value"
                                   for kafka-console-producer) and add them to STATE/expected.jsonl
  gen-large STATE                  STATE/input-large.txt: a record near max.message.bytes, one
                                   above it, one after it
  feed FILE                        print FILE slowly (2 ms every 4 lines), so producer batches
                                   span several timestamps
  produced NAME OUT                kafka-console-producer output: no send errors
  too-large STATE OUT              large_record and message_too_large from the large run's output
  describe-topic NAME TOPIC N OUT [CONFIG]
                                   kafka-topics --describe: N partitions, each with a leader
                                   and COMPAT_REPLICATION_FACTOR (default 1) distinct replicas
                                   (and CONFIG, e.g. a=1,b=2, among its Configs)
  configs NAME TOPIC OUT           kafka-configs --describe --all: the altered and default values
  consume STATE OUT ERR            kafka-console-consumer output against expected.jsonl; prints
                                   `QUERY none TS` / `QUERY zstd TS` lines for offsets by timestamp
  offsets NAME STATE TOPIC TS OUT  kafka-get-offsets (GetOffsetShell --time TS) answers
groups scenario (scenario_groups.sh):
  gen-keys STATE NAME PREFIX N     STATE/keys-NAME.txt: N lines "PREFIX-i<TAB>value"
  group-consume NAME STATE KEYS OUT ERR
                                   kafka-console-consumer --group output: every key of
                                   STATE/keys-KEYS.txt exactly once, offsets contiguous in each
                                   partition from the group's position (0, or STATE/ends.json);
                                   STATE/ends.json becomes the new position
  group-describe NAME STATE GROUP TOPIC N LAG OUT
                                   kafka-consumer-groups --describe: N partitions committed at
                                   STATE/ends.json, LAG in total behind LOG-END-OFFSET
  group-list NAME GROUP STATE OUT  kafka-consumer-groups --list --state: GROUP in STATE
  group-reset NAME TOPIC N OUT     kafka-consumer-groups --reset-offsets --to-earliest: N partitions at 0
  listed NAME WORD OUT [absent]    OUT lists WORD as a line (or, with `absent`, does not)
"""

import json
import os
import re
import sys
import time

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 40
MAX_MESSAGE_BYTES = 10000
LARGE = 9800
TOO_LARGE = 20000
NULL = "<NULL>"

failed = False


def ok(name):
    print(f"PASS {name}")


def bad(name, why):
    global failed
    failed = True
    why = re.sub(r"\s+", " ", str(why)).strip()
    if len(why) > 900:
        why = why[:900] + " ..."
    print(f"FAIL {name}: {why}")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tool_error(text):
    """The most telling line of a Kafka tool's failure output (exception or ERROR line)."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in lines:
        if re.search(r"(Exception|Error): ", l) and not l.startswith("at "):
            return l[:400]
    for l in lines:
        if "ERROR" in l or "WARN" in l:
            return l[:400]
    return " | ".join(lines[-3:])[:400] if lines else "(no output)"


def headers_str(headers):
    return ",".join(f"{k}:{NULL if v is None else v}" for k, v in headers)


# ------------------------------------------------------------------ inputs

def gen(state, codec):
    recs = []
    lines = []
    for i in range(PER_CODEC):
        key = None if i == 3 else f"cli-{codec}-{i}"
        if i % 10 == 7:
            value = None
        elif i % 10 == 8:
            value = ""
        else:
            value = f"value-{codec}-{i};" * (1 + i % 7)
        headers = [("codec", codec), ("client", "cli"), ("i", str(i)), ("empty", "")]
        if i % 5 == 0:
            headers.append(("nullh", None))
        recs.append({"section": codec, "i": i, "key": key, "value": value, "headers": headers})
        lines.append("\t".join([headers_str(headers), NULL if key is None else key,
                                NULL if value is None else value]))
    with open(os.path.join(state, f"input-{codec}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(state, "expected.jsonl"), "a") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def gen_large(state):
    big = "".join(chr(ord("a") + i % 26) for i in range(LARGE))
    huge = "x" * TOO_LARGE
    recs = [
        {"section": "large", "i": 0, "key": "large", "value": big, "headers": [("section", "large")]},
        {"section": "too-large", "i": 1, "key": "too-large", "value": huge, "headers": [("section", "too-large")]},
        {"section": "large", "i": 2, "key": "after-too-large", "value": "the producer goes on",
         "headers": [("section", "large")]},
    ]
    with open(os.path.join(state, "input-large.txt"), "w") as f:
        for r in recs:
            f.write("\t".join([headers_str(r["headers"]), r["key"], r["value"]]) + "\n")
    with open(os.path.join(state, "expected.jsonl"), "a") as f:
        for r in recs:
            if r["section"] != "too-large":
                f.write(json.dumps(r) + "\n")


def feed(path):
    with open(path) as f:
        for n, line in enumerate(f):
            sys.stdout.write(line)
            if n % 4 == 3:
                sys.stdout.flush()
                time.sleep(0.002)
    sys.stdout.flush()


SEND_ERROR = re.compile(r"Error when sending message to topic \S+ with key: (\S+ bytes|null), value: (\S+ bytes|null)")


def send_errors(text):
    """[(value size, exception line)] for each ErrorLoggingCallback report."""
    lines = text.splitlines()
    out = []
    for n, l in enumerate(lines):
        m = SEND_ERROR.search(l)
        if m:
            exc = lines[n + 1].strip() if n + 1 < len(lines) else ""
            out.append((m.group(2), exc))
    return out


def produced(name, path):
    text = read(path)
    errs = send_errors(text)
    if errs:
        bad(name, f"{len(errs)} records failed; first: value {errs[0][0]}: {errs[0][1]}")
    elif re.search(r"Exception", text):
        bad(name, tool_error(text))
    else:
        ok(name)


def too_large(state, path):
    text = read(path)
    errs = send_errors(text)
    big = [e for e in errs if e[0] == f"{LARGE} bytes"]
    huge = [e for e in errs if e[0] == f"{TOO_LARGE} bytes"]
    other = [e for e in errs if e not in big and e not in huge]
    if big or other:
        e = (big + other)[0]
        bad("large_record", f"a {LARGE}-byte record (under max.message.bytes={MAX_MESSAGE_BYTES}) failed: {e[1]}")
    else:
        ok("large_record")
    if not huge:
        bad("message_too_large", f"a {TOO_LARGE}-byte record was accepted (topic max.message.bytes="
                                 f"{MAX_MESSAGE_BYTES}); producer output: {tool_error(text)}")
    elif "RecordTooLargeException" in huge[0][1]:
        ok("message_too_large")
    else:
        bad("message_too_large", f"expected RecordTooLargeException (MESSAGE_TOO_LARGE), got: {huge[0][1]}")
    # a record that went in after all is in the log: count it in what the verify phase expects
    if not huge:
        with open(os.path.join(state, "expected.jsonl"), "a") as f:
            f.write(json.dumps({"section": "too-large", "i": 1, "key": "too-large", "value": "x" * TOO_LARGE,
                                "headers": [("section", "too-large")]}) + "\n")


# ------------------------------------------------------------------ admin outputs

def describe_topic(name, topic, n, path, config=None):
    text = read(path)
    m = re.search(rf"^Topic: {re.escape(topic)}\s.*PartitionCount: (\d+).*Configs: (.*)$", text, re.M)
    rf = int(os.environ.get("COMPAT_REPLICATION_FACTOR") or 1)
    if not m:
        bad(name, f"kafka-topics --describe: {tool_error(text)}")
        return
    problems = []
    if int(m.group(1)) != n:
        problems.append(f"PartitionCount: {m.group(1)}, expected {n}")
    m_rf = re.search(rf"^Topic: {re.escape(topic)}\s.*ReplicationFactor: (\d+)", text, re.M)
    if not m_rf or int(m_rf.group(1)) != rf:
        problems.append(f"ReplicationFactor: {m_rf.group(1) if m_rf else '?'}, expected {rf}")
    have = m.group(2).strip().split(",")
    for c in (config.split(",") if config else []):
        if c not in have:
            problems.append(f"Configs: '{m.group(2).strip()}' lacks {c}")
    parts = re.findall(rf"^\s+Topic: {re.escape(topic)}\s+Partition: (\d+)\s+Leader: (\S+)\s+Replicas: (\S*)\s+Isr: (\S*)",
                       text, re.M)
    if sorted(int(p[0]) for p in parts) != list(range(n)):
        problems.append(f"partition lines for {sorted(int(p[0]) for p in parts)}, expected 0..{n - 1}")
    for p, leader, replicas, isr in parts:
        reps = replicas.split(",")
        if (not leader.isdigit() or leader not in reps or leader not in isr.split(",")
                or len(reps) != rf or len(set(reps)) != rf):
            problems.append(f"partition {p}: Leader: {leader} Replicas: {replicas} Isr: {isr}"
                            + (f" (expected {rf} replicas)" if len(set(reps)) != rf or len(reps) != rf else ""))
    if problems:
        bad(name, "; ".join(problems))
    else:
        ok(name)


def configs(name, topic, path):
    text = read(path)
    if f"All configs for topic {topic} are:" not in text:
        bad(name, f"kafka-configs --describe --all: {tool_error(text)}")
        return
    entries = {}
    for l in text.splitlines():
        m = re.match(r"^\s+([a-z0-9.]+)=(\S*) sensitive=\S+ synonyms=\{(.*)\}$", l)
        if m:
            entries[m.group(1)] = (m.group(2), m.group(3))
    problems = []
    for k, v in (("max.message.bytes", str(MAX_MESSAGE_BYTES)), ("retention.ms", "86400000")):
        e = entries.get(k)
        if e is None:
            problems.append(f"no {k}")
        elif e[0] != v or f"DYNAMIC_TOPIC_CONFIG:{k}={v}" not in e[1]:
            problems.append(f"{k}={e[0]} synonyms={{{e[1]}}}, expected {v} from DYNAMIC_TOPIC_CONFIG")
    if "cleanup.policy" not in entries:
        problems.append("no cleanup.policy (defaults are not described)")
    elif entries["cleanup.policy"][0] != "delete":
        problems.append(f"cleanup.policy={entries['cleanup.policy'][0]}, expected the default delete")
    if problems:
        bad(name, f"{len(entries)} configs; " + "; ".join(problems))
    else:
        ok(name)


# ------------------------------------------------------------------ consumed records

LINE = re.compile(r"^(CreateTime|LogAppendTime|NO_TIMESTAMP):(-?\d+)\tPartition:(\d+)\tOffset:(\d+)\t([^\t]*)\t([^\t]*)\t(.*)$")


def parse_headers(s):
    if s == "NO_HEADERS":
        return []
    out = []
    for h in s.split(","):
        k, _, v = h.partition(":")
        out.append([k, None if v == NULL else v])
    return out


def load_expected(state):
    recs = []
    with open(os.path.join(state, "expected.jsonl")) as f:
        for l in f:
            if l.strip():
                r = json.loads(l)
                r["headers"] = [list(h) for h in r["headers"]]
                recs.append(r)
    return recs


def windows(state):
    w = {}
    for l in read(os.path.join(state, "windows.txt")).splitlines():
        name, start, end = l.split()
        w[name] = (int(start), int(end))
    return w


def consume(state, path, errpath):
    expected = load_expected(state)
    text = read(path)
    err = read(errpath)
    got = []
    junk = []
    for l in text.splitlines():
        m = LINE.match(l)
        if not m:
            if l.strip():
                junk.append(l)
            continue
        got.append({"tstype": m.group(1), "ts": int(m.group(2)), "partition": int(m.group(3)),
                    "offset": int(m.group(4)), "headers": parse_headers(m.group(5)),
                    "key": None if m.group(6) == NULL else m.group(6),
                    "value": None if m.group(7) == NULL else m.group(7)})
    with open(os.path.join(state, "consumed.json"), "w") as f:
        json.dump(got, f)

    def ident(r):
        # every produced record carries its section and index: in the key, or (null key) in a header
        return (r["key"], headers_str(r["headers"]))

    by_id = {}
    for r in got:
        by_id.setdefault(ident(r), []).append(r)

    # -- consume_all
    problems = []
    m = re.search(r"Processed a total of (\d+) messages", err)
    if len(got) != len(expected):
        problems.append(f"consumed {len(got)} of {len(expected)} records")
    if junk:
        problems.append(f"unparsed output: {junk[0][:200]}")
    exc = [l for l in err.splitlines() if "ERROR" in l or "Exception" in l]
    if exc and len(got) != len(expected):
        problems.append(f"consumer: {tool_error(err)}")
    if not m and not got:
        problems.append(f"consumer: {tool_error(err)}")
    missing = [r for r in expected if ident(r) not in by_id]
    if missing and len(got) == len(expected):
        problems.append(f"{len(missing)} produced records not among them")
    if problems:
        bad("consume_all", "; ".join(problems))
    else:
        ok("consume_all")

    # -- content_<section>: key, value, headers (a record that is not found is reported here)
    for section in CODECS + ["large"]:
        name = f"content_{section}"
        recs = [r for r in expected if r["section"] == section]
        diffs = []
        for r in recs:
            c = by_id.get(ident(r))
            if not c:
                near = [g for g in got if g["key"] == r["key"]] if r["key"] is not None else []
                if near:
                    g = near[0]
                    diffs.append(f"record {r['key']}: headers {headers_str(g['headers'])!r}, expected {headers_str(r['headers'])!r}")
                else:
                    diffs.append(f"record {r['key'] or '(null key) ' + headers_str(r['headers'])} not consumed")
                continue
            c = c[0]
            if c["value"] != r["value"]:
                cv = c["value"] if c["value"] is None else f"{len(c['value'])} chars {c['value'][:40]!r}"
                rv = r["value"] if r["value"] is None else f"{len(r['value'])} chars {r['value'][:40]!r}"
                diffs.append(f"record {r['key']} (partition {c['partition']} offset {c['offset']}): value {cv}, expected {rv}")
        if not recs:
            bad(name, f"no {section} records were produced")
        elif diffs:
            bad(name, f"{len(diffs)} of {len(recs)} records differ; first: {diffs[0]}")
        else:
            ok(name)

    # -- partition_order: offsets 0..n-1 in order, records of one producer run in input order
    problems = []
    parts = {}
    for r in got:
        parts.setdefault(r["partition"], []).append(r)
    for p, rs in sorted(parts.items()):
        offs = [r["offset"] for r in rs]
        if offs != list(range(len(offs))):
            first = next(i for i, o in enumerate(offs) if o != i)
            problems.append(f"partition {p}: offset {offs[first]} at position {first}")
            continue
        last = {}
        for r in rs:
            sec = dict((k, v) for k, v in r["headers"]).get("codec") or dict((k, v) for k, v in r["headers"]).get("section")
            i = dict((k, v) for k, v in r["headers"]).get("i")
            if sec is None or i is None:
                continue
            i = int(i)
            if sec in last and i < last[sec]:
                problems.append(f"partition {p}: {sec} record {i} at offset {r['offset']} after record {last[sec]}")
                break
            last[sec] = i
    if problems:
        bad("partition_order", "; ".join(problems))
    elif not got:
        bad("partition_order", "nothing consumed")
    else:
        ok("partition_order")

    # -- record_timestamps: CreateTime within the producer run's time window
    w = windows(state)
    problems = []
    for r in got:
        h = dict((k, v) for k, v in r["headers"])
        sec = h.get("codec") or h.get("section")
        if r["tstype"] != "CreateTime":
            problems.append(f"partition {r['partition']} offset {r['offset']}: {r['tstype']}")
        elif sec in w and not (w[sec][0] - 1000 <= r["ts"] <= w[sec][1] + 1000):
            problems.append(f"partition {r['partition']} offset {r['offset']} ({sec}): timestamp {r['ts']} outside "
                            f"the producer run {w[sec][0]}..{w[sec][1]}")
    if problems:
        bad("record_timestamps", f"{len(problems)} records; first: {problems[0]}")
    elif not got:
        bad("record_timestamps", "nothing consumed")
    else:
        ok("record_timestamps")

    # -- timestamps for the offsets-by-timestamp lookups: a record in the middle of a section
    # whose predecessor in its partition is older
    for section in ("none", "zstd"):
        cands = []
        for p, rs in parts.items():
            for n in range(1, len(rs)):
                h = dict((k, v) for k, v in rs[n]["headers"])
                if h.get("codec") == section and rs[n]["ts"] > rs[n - 1]["ts"]:
                    cands.append(rs[n])
        if cands:
            cands.sort(key=lambda r: r["ts"])
            print(f"QUERY {section} {cands[len(cands) // 2]['ts']}")


def offsets(name, state, topic, ts, path):
    try:
        with open(os.path.join(state, "consumed.json")) as f:
            got = json.load(f)
    except (FileNotFoundError, ValueError):
        bad(name, "nothing consumed to compare with")
        return
    ts = int(ts)
    want = {}
    for r in got:
        if r["ts"] >= ts and (r["partition"] not in want or r["offset"] < want[r["partition"]]):
            want[r["partition"]] = r["offset"]
    text = read(path)
    answer = {}
    for l in text.splitlines():
        m = re.match(rf"^{re.escape(topic)}:(\d+):(-?\d*)$", l.strip())
        if m:
            answer[int(m.group(1))] = int(m.group(2)) if m.group(2) not in ("", "-1") else None
    if not answer and re.search(r"Exception|ERROR", text):
        bad(name, f"kafka-get-offsets --time {ts}: {tool_error(text)}")
        return
    diffs = []
    for p in sorted(set(want) | set(answer)):
        if want.get(p) != answer.get(p):
            diffs.append(f"partition {p}: got {answer.get(p, 'no offset')}, expected {want.get(p, 'no offset')}")
    if diffs:
        bad(name, f"timestamp {ts}: " + "; ".join(diffs))
    else:
        ok(name)


# ------------------------------------------------------------------ groups scenario

def gen_keys(state, name, prefix, n):
    with open(os.path.join(state, f"keys-{name}.txt"), "w") as f:
        for i in range(int(n)):
            f.write(f"{prefix}-{i}\tvalue of {prefix}-{i}\n")


def load_ends(state):
    try:
        with open(os.path.join(state, "ends.json")) as f:
            return {int(k): v for k, v in json.load(f).items()}
    except FileNotFoundError:
        return {}


GROUP_LINE = re.compile(r"^Partition:(\d+)\tOffset:(\d+)\t([^\t]*)\t(.*)$")


def group_consume(name, state, keys, path, errpath):
    want = [l.split("\t")[0] for l in read(os.path.join(state, f"keys-{keys}.txt")).splitlines() if l]
    start = load_ends(state)
    got = []
    for l in read(path).splitlines():
        m = GROUP_LINE.match(l)
        if m:
            got.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    problems = []
    counts = {}
    for _, _, k in got:
        counts[k] = counts.get(k, 0) + 1
    missing = [k for k in want if k not in counts]
    twice = sorted(k for k, c in counts.items() if c > 1)
    extra = sorted(k for k in counts if k not in set(want))
    if missing:
        problems.append(f"{len(missing)} of {len(want)} records not read (first {missing[0]})")
    if twice:
        problems.append(f"read twice: {twice[:5]}")
    if extra:
        problems.append(f"{len(extra)} records that should not come again: {extra[:5]}")
    parts = {}
    for p, o, _ in got:
        parts.setdefault(p, []).append(o)
    ends = dict(start)
    for p, offs in sorted(parts.items()):
        first = start.get(p, 0)
        if sorted(offs) != list(range(first, first + len(offs))):
            problems.append(f"partition {p}: offsets {sorted(offs)[:3]}..., expected {first}..{first + len(offs) - 1}")
        ends[p] = first + len(offs)
    if not got:
        problems.append(f"nothing read; consumer: {tool_error(read(errpath))}")
    if problems:
        bad(name, "; ".join(problems))
    else:
        ok(name)
        with open(os.path.join(state, "ends.json"), "w") as f:
            json.dump(ends, f)


def group_describe(name, state, group, topic, n, lag, path):
    n, lag = int(n), int(lag)
    text = read(path)
    ends = load_ends(state)
    rows = {}
    for l in text.splitlines():
        f = l.split()
        if len(f) >= 6 and f[0] == group and f[1] == topic and f[2].isdigit():
            rows[int(f[2])] = (f[3], f[4], f[5])
    if not rows:
        bad(name, f"kafka-consumer-groups --describe --group {group}: {tool_error(text)}")
        return
    problems = []
    if sorted(rows) != list(range(n)):
        problems.append(f"rows for partitions {sorted(rows)}, expected 0..{n - 1}")
    total = 0
    for p, (cur, end, lg) in sorted(rows.items()):
        want = str(ends.get(p, 0))
        if cur != want:
            problems.append(f"partition {p}: CURRENT-OFFSET {cur}, expected {want}")
        elif not (end.isdigit() and lg.isdigit() and int(end) - int(cur) == int(lg)):
            problems.append(f"partition {p}: CURRENT-OFFSET {cur} LOG-END-OFFSET {end} LAG {lg}")
        else:
            total += int(lg)
    if not problems and total != lag:
        problems.append(f"total LAG {total}, expected {lag}")
    if problems:
        bad(name, "; ".join(problems))
    else:
        ok(name)


def group_list(name, group, state, path):
    text = read(path)
    for l in text.splitlines():
        f = l.split()
        if f and f[0] == group:
            if len(f) > 1 and f[1] == state:
                ok(name)
            else:
                bad(name, f"kafka-consumer-groups --list --state: {l.strip()!r}, expected state {state}")
            return
    bad(name, f"kafka-consumer-groups --list --state does not list {group}: {tool_error(text)}")


def group_reset(name, topic, n, path):
    n = int(n)
    text = read(path)
    rows = {}
    for l in text.splitlines():
        f = l.split()
        if len(f) >= 4 and f[1] == topic and f[2].isdigit():
            rows[int(f[2])] = f[3]
    if not rows:
        bad(name, f"kafka-consumer-groups --reset-offsets: {tool_error(text)}")
    elif any(v != "0" for v in rows.values()) or sorted(rows) != list(range(n)):
        bad(name, f"NEW-OFFSET per partition {rows}, expected 0 for partitions 0..{n - 1}")
    else:
        ok(name)


def listed(name, word, path, absent=False):
    text = read(path)
    lines = {l.strip() for l in text.splitlines()}
    if (word in lines) != absent:
        ok(name)
    elif absent:
        bad(name, f"{word} is still listed")
    else:
        bad(name, f"{word} is not listed: {tool_error(text) if not lines - {''} else sorted(lines)[:10]}")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":
        gen(*args)
    elif cmd == "gen-large":
        gen_large(*args)
    elif cmd == "feed":
        feed(*args)
    elif cmd == "produced":
        produced(*args)
    elif cmd == "too-large":
        too_large(*args)
    elif cmd == "describe-topic":
        describe_topic(args[0], args[1], int(args[2]), args[3], args[4] if len(args) > 4 else None)
    elif cmd == "configs":
        configs(*args)
    elif cmd == "consume":
        consume(*args)
    elif cmd == "offsets":
        offsets(*args)
    elif cmd == "gen-keys":
        gen_keys(*args)
    elif cmd == "group-consume":
        group_consume(*args)
    elif cmd == "group-describe":
        group_describe(*args)
    elif cmd == "group-list":
        group_list(*args)
    elif cmd == "group-reset":
        group_reset(*args)
    elif cmd == "listed":
        listed(args[0], args[1], args[2], len(args) > 3 and args[3] == "absent")
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv)
