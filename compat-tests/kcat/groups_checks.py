#!/usr/bin/env python3
"""Checks for compat-tests/kcat/scenario_groups.sh (stdlib only).

    groups_checks.py gen STATE BATCH COUNT
        write STATE/input-BATCH.txt: COUNT lines `k-BATCH-NNNN:BATCH-NNNN` for kcat -P -K:
    groups_checks.py ready TOPIC PARTITIONS METADATA_JSON
        exit 0 if kcat -L -J shows TOPIC with PARTITIONS partitions, each led by a listed
        broker; otherwise print what is missing and exit 1
    groups_checks.py consumed NAME STATE TOPIC OUT ERR RC EXPECT OLD
        compare what `kcat -G ... -J -e` printed (OUT) with the records of the batches in
        EXPECT (comma-separated, may be empty: nothing must arrive), each exactly once;
        records of the batches in OLD must not come back (they were committed). Prints
        `PASS NAME` or `FAIL NAME: why`; exits 1 on FAIL.
"""

import json
import os
import sys


def batch_lines(state, batch):
    path = os.path.join(state, f"input-{batch}.txt")
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def cmd_gen(state, batch, count):
    with open(os.path.join(state, f"input-{batch}.txt"), "w") as f:
        for i in range(int(count)):
            f.write(f"k-{batch}-{i:04d}:{batch}-{i:04d}\n")


def cmd_ready(topic, partitions, md_path):
    try:
        with open(md_path) as f:
            md = json.load(f)
    except (OSError, ValueError) as e:
        print(f"unreadable metadata: {e}")
        return 1
    brokers = {b.get("id") for b in md.get("brokers", [])}
    tm = next((t for t in md.get("topics", []) if t.get("topic") == topic), None)
    if tm is None:
        print("topic not in metadata")
        return 1
    parts = tm.get("partitions", [])
    if len(parts) != int(partitions):
        print(f"{len(parts)} partitions, expected {partitions}")
        return 1
    bad = [p.get("partition") for p in parts if p.get("leader") not in brokers]
    if bad:
        print(f"partitions {bad} have no leader among brokers {sorted(brokers)}")
        return 1
    return 0


def stderr_summary(err_path):
    """kcat's error lines (or its last line), for failure messages."""
    try:
        with open(err_path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "ERROR" in ln or "FAIL" in ln or "rror" in ln]
    pick = (errors or lines[-1:])[-2:]
    return " | ".join(pick)


def cmd_consumed(name, state, topic, out_path, err_path, rc, expect, old):
    expect = [b for b in expect.split(",") if b]
    old = [b for b in old.split(",") if b]
    want = {}
    for b in expect:
        for line in batch_lines(state, b):
            k, v = line.split(":", 1)
            want[v] = k
    before = set()
    for b in old:
        before |= {line.split(":", 1)[1] for line in batch_lines(state, b)}

    problems = []
    got = []
    with open(out_path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                m = json.loads(line)
            except ValueError:
                problems.append(f"line {n} of kcat's output is not JSON: {line[:80]!r}")
                continue
            got.append(m)

    seen_pos, seen_val = {}, {}
    dup, reread, unknown, wrong_key, other_topic = [], [], [], [], []
    for m in got:
        pos = (m.get("partition"), m.get("offset"))
        v, k = m.get("payload"), m.get("key")
        where = f"p{pos[0]}@{pos[1]}"
        if m.get("topic") != topic:
            other_topic.append(f"{where} from topic {m.get('topic')!r}")
            continue
        if pos in seen_pos or v in seen_val:
            dup.append(f"{where} {v}")
        seen_pos[pos] = v
        seen_val[v] = pos
        if v in want:
            if k != want[v]:
                wrong_key.append(f"{where} {v} has key {k!r}, produced with {want[v]!r}")
        elif v in before:
            reread.append(f"{where} {v}")
        else:
            unknown.append(f"{where} {v!r}")
    missing = [v for v in want if v not in seen_val]

    if int(rc) != 0:
        why = "timed out after 60s" if int(rc) == 124 else f"exited {rc}"
        problems.append(f"kcat {why}")
    if missing:
        problems.append(f"{len(missing)} of {len(want)} expected records never arrived "
                        f"(first: {', '.join(missing[:3])})")
    if reread:
        problems.append(f"{len(reread)} records from before the committed offsets came back "
                        f"(first: {', '.join(reread[:3])})")
    if dup:
        problems.append(f"{len(dup)} records delivered twice (first: {', '.join(dup[:3])})")
    for label, items in (("unexpected records", unknown), ("wrong keys", wrong_key),
                         ("other topics", other_topic)):
        if items:
            problems.append(f"{len(items)} {label} (first: {', '.join(items[:2])})")
    if problems:
        log = stderr_summary(err_path)
        why = "; ".join(problems) + (f" [kcat stderr: {log}]" if log else "")
        print(f"FAIL {name}: {' '.join(why.split())}")
        return 1
    print(f"# {name}: {len(got)} records, as expected")
    print(f"PASS {name}")
    return 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "gen" and len(argv) == 4:
        cmd_gen(*argv[1:])
        return 0
    if len(argv) >= 1 and argv[0] == "ready" and len(argv) == 4:
        return cmd_ready(*argv[1:])
    if len(argv) >= 1 and argv[0] == "consumed" and len(argv) == 9:
        return cmd_consumed(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
