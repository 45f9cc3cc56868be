#!/usr/bin/env python3
"""Reads the output of Kafka's transaction tools for scenario_txn.sh (stdlib only).

Usage: txn_checks.py COMMAND ARGS...   (prints PASS/FAIL lines, exits 1 on FAIL; `get` prints a
value and exits 1 when it is not there; QUIET_PASS=1: no PASS line, for a step of a check)

  perf NAME COUNT OUT            kafka-producer-perf-test sent COUNT records without errors
  get-open OUT PID|any           the CurrentTransactionStartOffset of that producer (or of any
                                 producer) in a describe-producers table
  get-ends OUT TOPIC             kafka-get-offsets output -> "p0=end p1=end ..."
  get-pid OUT TID                ProducerId of TID in a list / describe table
  get-epoch OUT TID              ProducerEpoch of TID in a describe table
  list NAME TID STATE OUT        kafka-transactions list shows TID in STATE
  describe NAME TID STATE OUT [PID [MIN_EPOCH [PARTITIONS]]]
                                 kafka-transactions describe: STATE, producer id PID, epoch >=
                                 MIN_EPOCH, TopicPartitions = PARTITIONS ("" = none, "-" = any)
  open-at NAME OUT PARTITION OFFSET PID
                                 describe-producers: PID has an open transaction at OFFSET
  not-open NAME OUT PARTITION    describe-producers: no producer has an open transaction
  no-hanging NAME OUT            find-hanging printed its header and no transaction
  consumed NAME OUT ERR COUNT PARTITIONS
                                 kafka-console-consumer printed exactly COUNT records
"""

import os
import re
import sys


def ok(name):
    """The PASS line, and the `# name: ...` notes, unless QUIET_PASS is set (a step of a check
    whose PASS comes later)."""
    if not os.environ.get("QUIET_PASS"):
        print(f"PASS {name}")


def bad(name, why):
    print(f"FAIL {name}: {' '.join(str(why).split())[:900]}")
    sys.exit(1)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError as e:
        return f"(cannot read {path}: {e})"


def tool_error(text):
    for line in text.splitlines():
        if re.search(r"(Exception|Error)(: |$)|ERROR", line):
            return line.strip()[:400]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[-2:])[:400] or "no output"


def table(text):
    """ToolsUtils.prettyPrintTable output (tab-separated, padded) -> list of dicts."""
    rows = [ln.split("\t") for ln in text.splitlines() if "\t" in ln]
    if not rows:
        return None
    head = [c.strip() for c in rows[0]]
    while head and not head[-1]:
        head.pop()   # the table's lines end with a tab
    out = []
    for r in rows[1:]:
        cells = [c.strip() for c in r]
        cells += [""] * (len(head) - len(cells))
        out.append(dict(zip(head, cells)))
    return head, out


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "perf":
        name, count, path = args
        text = read(path)
        m = re.search(r"^(\d+) records sent", text, re.M)
        errs = [ln for ln in text.splitlines() if re.search(r"Exception|ERROR", ln)]
        if not m:
            bad(name, f"no summary line: {tool_error(text)}")
        if int(m.group(1)) != int(count):
            bad(name, f"{m.group(1)} records sent, expected {count}")
        if errs:
            bad(name, f"errors in the output: {errs[0][:400]}")
        if not os.environ.get("QUIET_PASS"):
            print(f"# {name}: {m.group(0)}")
        ok(name)
    elif cmd == "get-open":
        path, pid = args
        t = table(read(path))
        for r in (t[1] if t else []):
            if (pid == "any" or r.get("ProducerId") == pid) and \
                    r.get("CurrentTransactionStartOffset", "None") not in ("None", "", "-1"):
                print(r["ProducerId"], r["CurrentTransactionStartOffset"])
                return
        sys.exit(1)
    elif cmd == "get-ends":
        path, topic = args
        ends = {}
        for ln in read(path).splitlines():
            m = re.match(rf"^{re.escape(topic)}:(\d+):(-?\d+)\s*$", ln.strip())
            if m:
                ends[int(m.group(1))] = int(m.group(2))
        if not ends:
            sys.exit(1)
        print(" ".join(f"{p}={o}" for p, o in sorted(ends.items())))
    elif cmd in ("get-pid", "get-epoch"):
        path, tid = args
        t = table(read(path))
        col = "ProducerId" if cmd == "get-pid" else "ProducerEpoch"
        for r in (t[1] if t else []):
            if r.get("TransactionalId") == tid and r.get(col):
                print(r[col])
                return
        sys.exit(1)
    elif cmd == "list":
        name, tid, state, path = args
        text = read(path)
        t = table(text)
        if t is None:
            bad(name, f"no table: {tool_error(text)}")
        want = ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
        if t[0][:4] != want:
            bad(name, f"columns {t[0]}, expected {want}")
        mine = [r for r in t[1] if r["TransactionalId"] == tid]
        if not mine:
            bad(name, f"{tid} not among the {len(t[1])} listed transactional ids")
        if mine[0]["TransactionState"] != state:
            bad(name, f"{tid} listed as {mine[0]['TransactionState']}, expected {state}")
        if not mine[0]["ProducerId"].isdigit():
            bad(name, f"producer id {mine[0]['ProducerId']!r}")
        print(f"# {name}: {len(t[1])} transactional ids listed; {tid}: producer "
              f"{mine[0]['ProducerId']}, {state}")
        ok(name)
    elif cmd == "describe":
        name, tid, state, path = args[:4]
        pid = args[4] if len(args) > 4 else "-"
        min_epoch = int(args[5]) if len(args) > 5 and args[5] != "-" else None
        parts = args[6] if len(args) > 6 else "-"
        text = read(path)
        t = table(text)
        if t is None or not t[1]:
            bad(name, f"no description: {tool_error(text)}")
        r = t[1][0]
        problems = []
        if r.get("TransactionalId") != tid:
            problems.append(f"transactional id {r.get('TransactionalId')!r}")
        if r.get("TransactionState") != state:
            problems.append(f"state {r.get('TransactionState')}, expected {state}")
        if pid != "-" and r.get("ProducerId") != pid:
            problems.append(f"producer id {r.get('ProducerId')}, expected {pid}")
        try:
            epoch = int(r.get("ProducerEpoch", ""))
        except ValueError:
            epoch = None
            problems.append(f"producer epoch {r.get('ProducerEpoch')!r}")
        if min_epoch is not None and epoch is not None and epoch < min_epoch:
            problems.append(f"producer epoch {epoch}, expected at least {min_epoch}")
        if parts != "-":
            got = sorted(p for p in r.get("TopicPartitions", "").split(",") if p)
            want = sorted(p for p in parts.split(",") if p)
            if got != want:
                problems.append(f"partitions {got}, expected {want}")
        if problems:
            bad(name, "; ".join(problems) + f" (row: {r})")
        print(f"# {name}: producer {r.get('ProducerId')}/{r.get('ProducerEpoch')} {state} "
              f"timeout {r.get('TransactionTimeoutMs')} ms partitions "
              f"{r.get('TopicPartitions') or 'none'}")
        ok(name)
    elif cmd == "open-at":
        name, path, part, offset, pid = args
        text = read(path)
        t = table(text)
        if t is None:
            bad(name, f"partition {part}: no describe-producers table: {tool_error(text)}")
        opened = [r for r in t[1] if r.get("CurrentTransactionStartOffset") not in ("None", "")]
        if [(r["ProducerId"], r["CurrentTransactionStartOffset"]) for r in opened] != [(pid, offset)]:
            bad(name, f"partition {part}: open transactions {[(r['ProducerId'], r['CurrentTransactionStartOffset']) for r in opened]}, "
                      f"expected producer {pid} from offset {offset}")
    elif cmd == "not-open":
        name, path, part = args
        text = read(path)
        t = table(text)
        if t is None:
            bad(name, f"partition {part}: no describe-producers table: {tool_error(text)}")
        opened = [r for r in t[1] if r.get("CurrentTransactionStartOffset") not in ("None", "")]
        if opened:
            bad(name, f"partition {part}: still open: {[(r['ProducerId'], r['CurrentTransactionStartOffset']) for r in opened]}")
    elif cmd == "no-hanging":
        name, path = args
        text = read(path)
        t = table(text)
        want = ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch",
                "StartOffset", "LastTimestamp", "Duration(min)"]
        if t is None or t[0] != want:
            bad(name, f"no find-hanging table: {tool_error(text)}")
        if t[1]:
            bad(name, f"{len(t[1])} hanging transactions reported, first: {t[1][0]}")
        ok(name)
    elif cmd == "consumed":
        name, path, errpath, count, nparts = args
        lines = [ln for ln in read(path).splitlines() if ln.strip()]
        per = {}
        for ln in lines:
            m = re.match(r"^Partition:(\d+)\t", ln)
            if not m:
                bad(name, f"unexpected consumer output line {ln[:200]!r}")
            per[int(m.group(1))] = per.get(int(m.group(1)), 0) + 1
        err = read(errpath).splitlines()
        # --timeout-ms ends the consumer with "ERROR Error processing message, terminating
        # consumer process" and a TimeoutException on the next line: the normal end here
        errs = [ln for i, ln in enumerate(err) if re.search(r"Exception|ERROR", ln)
                and "TimeoutException" not in ln
                and not ("terminating consumer process" in ln and i + 1 < len(err)
                         and "TimeoutException" in err[i + 1])]
        if errs:
            bad(name, f"consumer errors: {errs[0][:400]}")
        if len(lines) != int(count):
            bad(name, f"read {len(lines)} records {dict(sorted(per.items()))}, expected {count}")
        if len(per) != int(nparts):
            bad(name, f"records from partitions {sorted(per)}, expected {nparts} partitions")
        print(f"# {name}: {len(lines)} records, per partition {dict(sorted(per.items()))}")
        ok(name)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
