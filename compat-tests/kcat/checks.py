#!/usr/bin/env python3
"""Record generator and result checker for compat-tests/kcat/scenario.sh (stdlib only).

kcat is the client under test; this file only writes its input and judges its output.
Subcommands (STATE is the scenario's state directory):
  gen STATE CODEC                      write STATE/input-CODEC.txt ("key:value" lines) and
                                       append what to expect to STATE/expected.jsonl
  feed FILE                            copy FILE to stdout slowly (2 ms every 4 lines), so
                                       records of one batch get different timestamps
  metadata NAME STATE METADATA_JSON    check `kcat -L -J` shows the topic, 3 partitions, leaders
  gone STATE METADATA_JSON             exit 0 if the topic is absent from `kcat -L -J`
  consume STATE CONSUMED_JSONL STDERR  check `kcat -C -J -e` output against expected.jsonl;
                                       writes STATE/queries.json and prints `kcat -Q` rounds
  offsets STATE ANSWERS                check `kcat -Q -J` answers against STATE/queries.json
Prints `PASS name` / `FAIL name: why` lines; exit status 1 if anything failed.
"""

import json
import os
import random
import re
import sys
import time

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
RECORDS_PER_CODEC = 120
KEYS_PER_CODEC = 12
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]

failures = 0


def ok(name):
    print(f"PASS {name}", flush=True)


def fail(name, why):
    global failures
    failures += 1
    print(f"FAIL {name}: {' '.join(str(why).split())}", flush=True)


def check(name, problems):
    if problems:
        extra = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        fail(name, "; ".join(problems[:3]) + extra)
    else:
        ok(name)


def read_state(state):
    with open(os.path.join(state, "topic")) as f:
        return f.read().strip()


def read_expected(state):
    path = os.path.join(state, "expected.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_jsonl(path):
    out, bad = [], []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                bad.append(line[:80])
    return out, bad


def headers_of(msg):
    """kcat -J prints headers as a flat [name, value, name, value, ...] list."""
    flat = msg.get("headers") or []
    return [[flat[i], flat[i + 1]] for i in range(0, len(flat) - 1, 2)]


def ident(key, value):
    """A record's identity: its value prefix `codec|seq|`, or the unique key of a tombstone."""
    if value is None:
        return f"tomb:{key}"
    m = re.match(r"^([a-z0-9]+)\|(\d+)\|", value)
    return f"{m.group(1)}|{m.group(2)}" if m else f"?:{value[:40]}"


# ----------------------------------------------------------------------------- subcommands

def cmd_gen(state, codec):
    topic = read_state(state)
    rng = random.Random(f"{topic}/{codec}")
    cidx = CODECS.index(codec)
    lines = []
    with open(os.path.join(state, "expected.jsonl"), "a") as exp:
        for i in range(RECORDS_PER_CODEC):
            if i % 25 == 11:
                key, value = f"tomb-{codec}-{i}", None  # kcat -Z sends an empty value as NULL
            else:
                key = f"key-{codec}-{i % KEYS_PER_CODEC:02d}"
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 80)))
                value = f"{codec}|{i}|{text}"
            lines.append(f"{key}:{value if value is not None else ''}")
            exp.write(json.dumps({
                "codec": codec, "seq": i, "gid": cidx * 100000 + i, "key": key, "value": value,
                "headers": [["codec", codec], ["client", "kcat"], ["empty", ""]],
            }) + "\n")
    with open(os.path.join(state, f"input-{codec}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def cmd_feed(path):
    with open(path, "rb") as f:
        lines = f.readlines()
    out = sys.stdout.buffer
    for i, line in enumerate(lines):
        out.write(line)
        if i % 4 == 3:
            out.flush()
            time.sleep(0.002)
    out.flush()


def topic_md(md_path, topic):
    with open(md_path) as f:
        md = json.load(f)
    for t in md.get("topics") or []:
        if t.get("topic") == topic:
            return md, t
    return md, None


def cmd_metadata(name, state, md_path):
    topic = read_state(state)
    try:
        md, t = topic_md(md_path, topic)
    except (OSError, json.JSONDecodeError) as e:
        fail(name, f"kcat -L -J output unreadable: {e}")
        return
    if t is None:
        fail(name, f"topic {topic} not in kcat -L metadata")
        return
    problems = []
    if t.get("error"):
        problems.append(f"topic error: {t['error']}")
    brokers = {b.get("id") for b in md.get("brokers") or []}
    parts = t.get("partitions") or []
    if len(parts) != PARTITIONS:
        problems.append(f"{len(parts)} partitions, expected {PARTITIONS}")
    for p in parts:
        if p.get("error"):
            problems.append(f"partition {p.get('partition')}: error {p['error']}")
        if p.get("leader") not in brokers:
            problems.append(f"partition {p.get('partition')}: leader {p.get('leader')} "
                            f"not among brokers {sorted(brokers)}")
    if md.get("controllerid", -1) not in brokers:
        problems.append(f"controller id {md.get('controllerid')} not among brokers {sorted(brokers)}")
    check(name, problems)


def cmd_gone(state, md_path):
    topic = read_state(state)
    try:
        _, t = topic_md(md_path, topic)
    except (OSError, json.JSONDecodeError):
        return 1
    return 0 if t is None else 1


def cmd_consume(state, consumed_path, stderr_path):
    topic = read_state(state)
    expected = read_expected(state)
    exp_by_id = {ident(r["key"], r["value"]): r for r in expected}
    msgs, bad = read_jsonl(consumed_path)
    with open(stderr_path, errors="replace") as f:
        stderr = f.read()

    # -- consume_all: count, and the end offsets kcat reports ("Reached end ... at offset N")
    problems = [f"unparseable kcat output line: {b}" for b in bad[:2]]
    errors = [ln.strip() for ln in stderr.splitlines()
              if ln.startswith("%") and "Reached end" not in ln]
    problems += [f"kcat: {e}" for e in errors[:3]]
    ends = {int(p): int(o) for p, o in
            re.findall(r"Reached end of topic \S+ \[(\d+)\] at offset (\d+)", stderr)}
    per_part = {p: [] for p in range(PARTITIONS)}
    for m in msgs:
        per_part.setdefault(m.get("partition"), []).append(m)
    if len(msgs) != len(expected):
        problems.append(f"consumed {len(msgs)} records, expected {len(expected)}")
    for p in range(PARTITIONS):
        if p not in ends:
            problems.append(f"partition {p}: kcat never reached the end")
        elif ends[p] != len(per_part[p]):
            problems.append(f"partition {p}: end offset {ends[p]}, consumed {len(per_part[p])}")
    check("consume_all", problems)

    # -- content per codec
    seen = {}
    for m in msgs:
        seen.setdefault(ident(m.get("key"), m.get("payload")), []).append(m)
    for codec in CODECS:
        problems = []
        recs = [r for r in expected if r["codec"] == codec]
        if not recs:
            fail(f"content_{codec}", "nothing was produced with this codec")
            continue
        for r in recs:
            got = seen.get(ident(r["key"], r["value"]), [])
            if not got:
                problems.append(f"record {codec}#{r['seq']} (key {r['key']}) not consumed")
                continue
            if len(got) > 1:
                problems.append(f"record {codec}#{r['seq']} consumed {len(got)} times")
            m = got[0]
            where = f"p{m.get('partition')}@{m.get('offset')}"
            if m.get("key") != r["key"]:
                problems.append(f"{where} key {m.get('key')!r} != {r['key']!r}")
            if m.get("payload") != r["value"]:
                problems.append(f"{where} value {str(m.get('payload'))[:40]!r} "
                                f"!= {str(r['value'])[:40]!r}")
            if headers_of(m) != r["headers"]:
                problems.append(f"{where} headers {headers_of(m)} != {r['headers']}")
        check(f"content_{codec}", problems)
    unknown = [k for k in seen if k not in exp_by_id]

    # -- per-partition order: offsets 0..n-1, produce order kept, a key stays on one partition
    problems = [f"unexpected record {k}" for k in unknown[:2]]
    key_part = {}
    for p in range(PARTITIONS):
        offs = [m.get("offset") for m in per_part[p]]
        if offs != list(range(len(offs))):
            i = next(i for i, o in enumerate(offs) if o != i)
            problems.append(f"partition {p}: offsets not 0..{len(offs) - 1} in order "
                            f"(index {i} has offset {offs[i]})")
        gids = [exp_by_id[ident(m.get("key"), m.get("payload"))]["gid"]
                for m in per_part[p] if ident(m.get("key"), m.get("payload")) in exp_by_id]
        if gids != sorted(gids):
            i = next(i for i in range(1, len(gids)) if gids[i] < gids[i - 1])
            problems.append(f"partition {p}: record at index {i} was produced before the one "
                            f"ahead of it")
        for m in per_part[p]:
            if key_part.setdefault(m.get("key"), p) != p:
                problems.append(f"key {m.get('key')} on partitions {key_part[m.get('key')]} and {p}")
    check("partition_order", problems)

    # -- timestamps: CreateTime, inside the window in which kcat produced that codec
    windows = {}
    wpath = os.path.join(state, "windows.txt")
    if os.path.exists(wpath):
        with open(wpath) as f:
            for line in f:
                c, a, b = line.split()
                windows[c] = (int(a), int(b))
    problems = []
    for m in msgs:
        r = exp_by_id.get(ident(m.get("key"), m.get("payload")))
        where = f"p{m.get('partition')}@{m.get('offset')}"
        if m.get("tstype") != "create":
            problems.append(f"{where} timestamp type {m.get('tstype')}, expected create")
        elif r and r["codec"] in windows:
            a, b = windows[r["codec"]]
            if not a - 1000 <= m.get("ts", -1) <= b + 1000:
                problems.append(f"{where} timestamp {m.get('ts')} outside produce window {a}..{b}")
    check("record_timestamps", problems)

    # -- queries for ListOffsets by timestamp, one partition per kcat -Q round
    def codec_of(m):
        r = exp_by_id.get(ident(m.get("key"), m.get("payload")))
        return r["codec"] if r else None

    queries = []
    for p in range(PARTITIONS):
        recs = sorted(per_part[p], key=lambda m: m.get("offset"))
        if not recs:
            continue
        tss = [m.get("ts") for m in recs]
        times = {min(tss) - 1, max(tss), max(tss) + 1, max(tss) + 86_400_000}
        first_by_codec = {}
        for m in recs:
            first_by_codec.setdefault(codec_of(m), m.get("ts"))
        times |= set(first_by_codec.values())
        times |= {t + 1 for t in first_by_codec.values()}
        # where the timestamp changes within one codec's run: up to 3 per codec
        changes = {}
        for prev, m in zip(recs, recs[1:]):
            c = codec_of(m)
            if c == codec_of(prev) and m.get("ts") > prev.get("ts") and changes.get(c, 0) < 3:
                changes[c] = changes.get(c, 0) + 1
                times.add(m.get("ts"))
        by_off = {m.get("offset"): m for m in recs}
        for t in sorted(times):
            exp = next((m.get("offset") for m in recs if m.get("ts") >= t), -1)
            m, prev = by_off.get(exp), by_off.get(exp - 1)
            # the answer is a record after the first of a compressed kcat run, so most
            # likely inside a compressed batch, where the broker must look at records
            inside = bool(m and prev and codec_of(m) == codec_of(prev)
                          and codec_of(m) not in (None, "none"))
            queries.append({"partition": p, "ts": t, "expected": exp, "inside": inside})
    with open(os.path.join(state, "queries.json"), "w") as f:
        json.dump(queries, f)
    rounds = {}
    for q in queries:
        rounds.setdefault(q["partition"], []).append(q)
    for i in range(max((len(v) for v in rounds.values()), default=0)):
        print("QUERY " + " ".join(f"{topic}:{p}:{qs[i]['ts']}"
                                  for p, qs in sorted(rounds.items()) if i < len(qs)))


def cmd_offsets(state, answers_path):
    topic = read_state(state)
    with open(os.path.join(state, "queries.json")) as f:
        queries = json.load(f)
    if not queries:
        fail("offsets_for_times", "no records were consumed, nothing to look up")
        return
    # answers: one `kcat -Q -J` document per line, in round order
    with open(answers_path, errors="replace") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    rounds = {}
    for q in queries:
        rounds.setdefault(q["partition"], []).append(q)
    problems = {False: [], True: []}
    for i, line in enumerate(lines):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            for p, qs in rounds.items():
                if i < len(qs):
                    problems[qs[i]["inside"]].append(f"kcat -Q: {line[:200]}")
            continue
        parts = (doc.get(topic) or {})
        for p, qs in sorted(rounds.items()):
            if i >= len(qs):
                continue
            q = qs[i]
            ans = parts.get(str(p))
            out = problems[q["inside"]]
            if ans is None:
                out.append(f"partition {p} timestamp {q['ts']}: no answer")
            elif "offset" not in ans:
                out.append(f"partition {p} timestamp {q['ts']}: {ans}")
            elif ans["offset"] != q["expected"]:
                out.append(f"partition {p} timestamp {q['ts']}: offset {ans['offset']}, "
                           f"expected {q['expected']}")
    n_rounds = max(len(v) for v in rounds.values())
    if len(lines) < n_rounds:
        problems[False].append(f"only {len(lines)} of {n_rounds} kcat -Q rounds answered")
    check("offsets_for_times", problems[False])
    if any(q["inside"] for q in queries):
        check("offsets_for_times_compressed", problems[True])
    else:
        fail("offsets_for_times_compressed", "no timestamp change inside a compressed kcat run "
             "(the records of each batch all got the same timestamp); nothing to look up")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":
        cmd_gen(*args)
    elif cmd == "metadata":
        cmd_metadata(*args)
    elif cmd == "gone":
        return cmd_gone(*args)
    elif cmd == "consume":
        cmd_consume(*args)
    elif cmd == "offsets":
        cmd_offsets(*args)
    elif cmd == "feed":
        cmd_feed(*args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
