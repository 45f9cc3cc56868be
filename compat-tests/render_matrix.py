#!/usr/bin/env python3
"""Render compat-tests/MATRIX.md from the results run.sh collected (stdlib only).

Usage: render_matrix.py RESULTS_TSV META_JSON OUT_MD

RESULTS_TSV lines: target<TAB>client<TAB>stage<TAB>check<TAB>status<TAB>message
  target  ours | cluster (run.sh --cluster) | reference
  stage   produce | verify | restart-verify | cleanup
  status  PASS | FAIL | SKIP | NOTRUN
META_JSON: {"date", "commit", "clients": {client: label}, "targets": {target: label},
            "events": [{"target", "text"}], "scenarios": {"client/scenario": "path"}}
Checks named group_* (the consumer-group scenarios) and txn_* (the transaction scenarios) get
tables of their own.
"""

import json
import sys

STAGES = [("produce", ""), ("verify", ""), ("restart-verify", "after restart: "), ("cleanup", "")]
CANONICAL = {
    "produce": ["create_topic", "produce_timestamps", "produce_none", "produce_gzip",
                "produce_snappy", "produce_lz4", "produce_zstd", "message_too_large"],
    "verify": ["metadata", "consume_all", "content_timestamps", "content_none", "content_gzip",
               "content_snappy", "content_lz4", "content_zstd", "partition_order",
               "record_timestamps", "offsets_for_times", "offsets_for_times_compressed"],
    "cleanup": ["delete_topic"],
}
CANONICAL["restart-verify"] = CANONICAL["verify"]
# the consumer-group scenarios (kcat/scenario_groups.sh, python/scenario_groups.py): own table
GROUP_CANONICAL = {
    "produce": ["group_create_topic", "group_produce"],
    "verify": ["group_join", "group_consume", "group_commit", "group_leave_rebalance",
               "group_resume_after_rebalance", "group_list", "group_describe",
               "group_delete_nonempty", "group_commit_before_restart", "group_produce_more",
               "group_close"],
    "restart-verify": ["group_committed_after_restart", "group_resume_after_restart",
                       "group_resume_again", "group_list", "group_describe", "group_commit",
                       "group_close"],
    "cleanup": ["group_list_offsets", "group_delete", "group_delete_topic"],
}
# the transaction scenarios (python/scenario_txn.py, java --txn, kafka-cli/scenario_txn.sh)
TXN_CANONICAL = {
    "produce": ["txn_create_topics", "txn_init", "txn_commit", "txn_abort",
                "txn_commit_after_abort", "txn_abort_again", "txn_commit_again",
                "txn_open_invisible", "txn_admin_describe", "txn_admin_list",
                "txn_admin_describe_producers", "txn_open_visible_after_commit",
                "txn_zombie_fenced", "txn_fenced_successor_commits", "txn_admin_fence_producers",
                "txn_timeout_abort", "txn_ctp_input", "txn_send_offsets", "txn_perf_producer",
                "txn_cli_list", "txn_cli_describe", "txn_cli_open", "txn_cli_find_hanging",
                "txn_cli_abort", "txn_cli_fence"],
    "verify": ["txn_read_committed", "txn_read_uncommitted", "txn_offsets_committed",
               "txn_leave_open", "txn_cli_read_committed", "txn_cli_read_uncommitted",
               "txn_cli_describe_persisted"],
    "restart-verify": ["txn_read_committed", "txn_read_uncommitted", "txn_offsets_committed",
                       "txn_open_after_restart", "txn_abort_open_by_init",
                       "txn_cli_read_committed", "txn_cli_read_uncommitted",
                       "txn_cli_describe_persisted"],
    "cleanup": ["txn_delete_group", "txn_delete_topics"],
}
DESCRIBE = {
    "create_topic": "CreateTopics: 3 partitions, max.message.bytes=10000; visible in Metadata",
    "produce_timestamps": "explicit CreateTime timestamps: an uncompressed batch, then a "
                          "zstd batch",
    "produce_none": "produce keyed records with headers, uncompressed",
    "produce_gzip": "... gzip",
    "produce_snappy": "... snappy",
    "produce_lz4": "... lz4",
    "produce_zstd": "... zstd",
    "message_too_large": "record > max.message.bytes rejected with MESSAGE_TOO_LARGE",
    "compacted_keyless_rejected": "cleanup.policy=compact topic: a batch of keyless records "
                                  "fails with INVALID_RECORD",
    "compacted_mixed_batch_rejected": "... a batch mixing keyed and keyless records fails "
                                      "whole with INVALID_RECORD",
    "compacted_keyed_accepted": "... a keyed record is delivered, at offset 0",
    "metadata": "Metadata: topic, 3 partitions, leaders among brokers",
    "consume_all": "consume from offset 0: every record, right end offsets",
    "content_timestamps": "timestamped records: key, value, headers",
    "content_none": "uncompressed records: key, value, headers",
    "content_gzip": "gzip records: key, value, headers",
    "content_snappy": "snappy records: key, value, headers",
    "content_lz4": "lz4 records: key, value, headers",
    "content_zstd": "zstd records: key, value, headers",
    "partition_order": "per-partition order and contiguous offsets",
    "record_timestamps": "CreateTime timestamps come back as produced",
    "offsets_for_times": "ListOffsets by timestamp (uncompressed batches, batch boundaries, "
                         "past the end)",
    "offsets_for_times_compressed": "ListOffsets by timestamp landing inside a compressed batch",
    "delete_topic": "DeleteTopics; topic gone from Metadata",
    "group_create_topic": "CreateTopics: 6 partitions",
    "group_produce": "produce 600 keyed records",
    "group_join": "3 consumers subscribe in one group: non-empty, disjoint assignments that "
                  "cover all 6 partitions",
    "group_consume": "the group reads every record exactly once (kcat: `kcat -G GROUP -X "
                     "auto.offset.reset=earliest -J -e TOPIC`, commits on exit)",
    "group_commit": "sync commit; committed() returns what was consumed",
    "group_leave_rebalance": "one consumer close()s: the other two take over its partitions",
    "group_resume_after_rebalance": "the new owners start at the committed offsets: only the "
                                    "records produced after the rebalance arrive",
    "group_list": "ListGroups: group listed as Stable; the states filter",
    "group_describe": "DescribeGroups: Stable, member ids, client ids, assignments, range "
                      "assignor",
    "group_delete_nonempty": "DeleteGroups on a group with members: NON_EMPTY_GROUP",
    "group_commit_before_restart": "sync commit; committed() returns the end offsets",
    "group_produce_more": "produce 120 more records, to be read after the restart",
    "group_close": "every member close()s: group listed as Empty",
    "group_committed_after_restart": "committed() after the restart returns the offsets "
                                     "committed before it",
    "group_resume_after_restart": "a new consumer in the group reads exactly the records "
                                  "produced after the commit (kcat: the same command prints "
                                  "exactly the new records)",
    "group_resume_again": "the same kcat command once more prints nothing",
    "group_list_offsets": "OffsetFetch (list_consumer_group_offsets, all and named partitions) "
                          "returns the last commit",
    "group_delete": "DeleteGroups on the empty group: gone from ListGroups, offsets gone",
    "group_delete_topic": "DeleteTopics; topic gone from Metadata",
}
# the Go clients' scenario (compat-tests/go): checks of its own
DESCRIBE.update({
    "large_record": "a record whose batch is just under max.message.bytes is accepted",
    "content_large": "that record reads back intact",
    "idempotent_producer": "idempotent producer (InitProducerId, sequences): every record "
                           "acknowledged, offsets in produce order",
    "idempotent_log": "the idempotent records read back exactly once, in order",
    "group_committed": "OffsetFetch returns the offsets committed in the produce phase",
    "group_resume": "a new group member resumes at the committed offsets",
    "group_commit_on_revoke": "each member commits from its revoke hook, while the group "
                              "rebalances: accepted (Kafka refuses only in CompletingRebalance)",
    "admin_describe_topic": "Metadata of a new 2-partition topic: leader, replicas, ISR",
    "admin_create_partitions": "CreatePartitions 2 -> 4, visible in Metadata",
    "admin_alter_configs": "IncrementalAlterConfigs: retention.ms, max.message.bytes",
    "admin_describe_configs": "DescribeConfigs: the altered values, not as defaults; "
                              "defaults listed too",
    "admin_alter_configs_legacy": "AlterConfigs (the non-incremental API) replaces the "
                                  "topic's configs",
    "admin_persisted": "partition count and configs as last set",
})
# the Java client (compat-tests/java) and Kafka's CLI tools (compat-tests/kafka-cli)
DESCRIBE.update({
    "produce_after_rejection": "the idempotent producer goes on after MESSAGE_TOO_LARGE "
                               "(Java bumps its epoch client-side)",
    "producer_perf_test": "kafka-producer-perf-test: 20000 records, acks=all, no errors",
    "delete_records": "kafka-delete-records to offset 10, then kafka-get-offsets --time -2 "
                      "answers 10 (DeleteRecords, ListOffsets earliest)",
    "metadata_quorum": "kafka-metadata-quorum (DescribeQuorum)",
    "group_reset_offsets": "kafka-consumer-groups --reset-offsets --to-earliest --execute",
    "group_commit_on_revoke": "commitSync in onPartitionsRevoked while the group rebalances "
                              "(PreparingRebalance) is accepted, as Kafka does",
})
DESCRIBE.update({
    "txn_create_topics": "CreateTopics: OUT and IN (3 partitions), OPEN (1 partition)",
    "txn_init": "init_transactions: FindCoordinator (transaction), InitProducerId",
    "txn_commit": "begin, 30 records, commit (AddPartitionsToTxn, EndTxn commit, markers)",
    "txn_abort": "begin, 30 records flushed to the log, abort",
    "txn_commit_after_abort": "the same producer commits again after an abort",
    "txn_abort_again": "... aborts again",
    "txn_commit_again": "... commits again",
    "txn_open_invisible": "an open transaction: read_committed ListOffsets answers its first "
                          "offset (the last stable offset) and reads stop there, also before a "
                          "plain producer's later records; read_uncommitted reads them all",
    "txn_open_visible_after_commit": "after the commit read_committed reads them, no aborted ones",
    "txn_zombie_fenced": "a second producer with the same transactional.id: the first one's "
                         "next produce / commit fails fenced (fatal)",
    "txn_fenced_successor_commits": "the successor's transaction commits; the zombie's records "
                                    "stay invisible to read_committed",
    "txn_ctp_input": "produce the consume-transform-produce input (30 plain records)",
    "txn_send_offsets": "consume-transform-produce with send_offsets_to_transaction and the "
                        "group metadata (TxnOffsetCommit): a committed round moves the group's "
                        "offsets, an aborted one does not, the re-read round commits; every "
                        "input in the output exactly once",
    "txn_read_committed": "read_committed reads exactly the committed records, per partition "
                          "in produce order, no aborted record",
    "txn_read_uncommitted": "read_uncommitted reads every record, committed and aborted",
    "txn_offsets_committed": "the transactional offset commits are the group's offsets "
                             "(OffsetFetch require_stable)",
    "txn_leave_open": "a producer leaves a transaction open (exits without ending it); the last "
                      "stable offset stays at its start",
    "txn_open_after_restart": "after the restart the open transaction still holds the last "
                              "stable offset (producer state recovered)",
    "txn_abort_open_by_init": "a new producer with that transactional.id aborts it "
                              "(coordinator state recovered): the open records never become "
                              "readable, later ones do",
    "txn_admin_describe": "DescribeTransactions of the open transaction: Ongoing, its "
                          "partitions, timeout, start time, producer id",
    "txn_admin_list": "ListTransactions lists it Ongoing; the state filter",
    "txn_admin_describe_producers": "DescribeProducers on a partition: the producer and its "
                                    "open transaction's start offset",
    "txn_admin_fence_producers": "Admin fenceProducers: the producer's commit fails "
                                 "ProducerFencedException, the id is Empty with a newer epoch",
    "txn_timeout_abort": "a transaction older than its transaction.timeout.ms (3 s) is aborted "
                         "by the coordinator: CompleteAbort, last stable offset = log end",
    "txn_perf_producer": "kafka-producer-perf-test --transactional-id "
                         "--transaction-duration-ms 100: 2000 records, no errors",
    "txn_cli_list": "kafka-transactions list: the id, CompleteCommit",
    "txn_cli_describe": "kafka-transactions describe: CompleteCommit, same producer id, no "
                        "partitions",
    "txn_cli_open": "a transactional perf producer killed -9 mid-transaction: describe-producers "
                    "shows it open on both partitions from the previous log ends; describe: "
                    "Ongoing with both partitions",
    "txn_cli_find_hanging": "kafka-transactions find-hanging --max-transaction-timeout 0: "
                            "nothing (the coordinator knows the open transaction)",
    "txn_cli_abort": "kafka-transactions abort --start-offset on partition 0 (WriteTxnMarkers "
                     "from the admin client): closed there, still open on partition 1",
    "txn_cli_fence": "a new perf producer with the dead one's id: the rest is aborted, "
                     "CompleteCommit with a newer epoch",
    "txn_cli_read_committed": "kafka-console-consumer --isolation-level read_committed: "
                              "exactly the committed records",
    "txn_cli_read_uncommitted": "... read_uncommitted: also the killed producer's records",
    "txn_cli_describe_persisted": "kafka-transactions describe: same producer id and epoch",
    "txn_delete_group": "DeleteGroups on the transactional consumer group",
    "txn_delete_topics": "DeleteTopics on the scenario's topics",
})
CELL = {"PASS": "pass", "FAIL": "**FAIL**", "SKIP": "n.a.", "NOTRUN": "not run"}


def main(results_path, meta_path, out_path):
    with open(meta_path) as f:
        meta = json.load(f)
    results = {}
    order = {s: list(CANONICAL[s]) for s, _ in STAGES}
    group_order = {s: list(GROUP_CANONICAL[s]) for s, _ in STAGES}
    txn_order = {s: list(TXN_CANONICAL[s]) for s, _ in STAGES}
    with open(results_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                continue
            target, client, stage, check, status = parts[:5]
            msg = parts[5] if len(parts) > 5 else ""
            results[(target, client, stage, check)] = (status, msg)
            where = (group_order if check.startswith("group_") else
                     txn_order if check.startswith("txn_") else order)
            if stage in where and check not in where[stage]:
                where[stage].append(check)

    clients = list(meta["clients"])
    targets = list(meta["targets"])
    columns = [(c, t) for c in clients for t in targets]

    def cell(c, t, stage, check):
        if (t, c, stage, check) in results:
            return CELL.get(results[(t, c, stage, check)][0], results[(t, c, stage, check)][0])
        return "n.a."

    short = {"ours": "this broker", "cluster": "this broker, 3 nodes", "reference": "Apache Kafka"}
    out = ["# Client compatibility matrix", ""]
    out.append(f"Generated by `compat-tests/run.sh` on {meta['date']}"
               + (f" at commit `{meta['commit']}`" if meta.get("commit") else "") + ".")
    out.append("")
    out.append("Each client runs its scenario in phases against each broker: "
               "produce, verify, restart the broker, verify again (`after restart:` rows), "
               "cleanup. `n.a.` = the client cannot do this step; `not run` = an earlier "
               "failure or a crash stopped the phase before it.")
    out.append("")
    out.append("Clients: " + "; ".join(f"**{c}** = {label}" for c, label in meta["clients"].items())
               + ".")
    out.append("")
    out.append("Brokers: " + "; ".join(f"**{short.get(t, t)}** = {label}"
                                       for t, label in meta["targets"].items())
               + ".")
    out.append("")
    def table(rows):
        if not any((t, c, stage, check) in results
                   for stage, _ in STAGES for check in rows[stage] for c, t in columns):
            return False
        head = "| scenario | " + " | ".join(f"{c} / {short.get(t, t)}" for c, t in columns) + " |"
        out.append(head)
        out.append("|---|" + "---|" * len(columns))
        totals = {col: {"PASS": 0, "FAIL": 0} for col in columns}
        for stage, prefix in STAGES:
            for check in rows[stage]:
                if not any((t, c, stage, check) in results for c, t in columns):
                    continue
                name = f"{prefix}{check}"
                desc = DESCRIBE.get(check, "")
                # after-restart rows repeat a verify check: its description is above
                repeat = prefix and check in rows["verify"]
                label = f"`{name}`" + (f" ({desc})" if desc and not repeat else "")
                cells = []
                for c, t in columns:
                    st = results.get((t, c, stage, check), ("SKIP", ""))[0]
                    if st in totals[(c, t)]:
                        totals[(c, t)][st] += 1
                    cells.append(cell(c, t, stage, check))
                out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("| **total** | " + " | ".join(
            f"{totals[col]['PASS']} passed, {totals[col]['FAIL']} failed" for col in columns)
            + " |")
        out.append("")
        return True

    table(order)
    group_rows = len(out)
    out += ["## Consumer groups", "",
            "Same phases; the group scenarios have their own `after restart:` checks (the "
            "consumer resumes from the offsets committed before the restart).", ""]
    if not table(group_order):
        del out[group_rows:]
    txn_rows = len(out)
    out += ["## Transactions", "",
            "Same phases; the transaction scenarios have their own `after restart:` checks (a "
            "transaction left open before the restart, the transactional offsets).", ""]
    if not table(txn_order):
        del out[txn_rows:]

    fails = [(k, v) for k, v in results.items() if v[0] in ("FAIL", "NOTRUN") and v[1]]
    if fails:
        out.append("## Failures (exact client output)")
        out.append("")
        for (t, c, stage, check), (status, msg) in sorted(
                fails, key=lambda kv: (targets.index(kv[0][0]) if kv[0][0] in targets else 9,
                                       clients.index(kv[0][1]) if kv[0][1] in clients else 9,
                                       [s for s, _ in STAGES].index(kv[0][2])
                                       if kv[0][2] in [s for s, _ in STAGES] else 9)):
            prefix = dict(STAGES).get(stage, "")
            out.append(f"- {c} / {t} / `{prefix}{check}`: {msg}")
        out.append("")

    notes = []
    for (t, c, stage, check), (status, msg) in sorted(results.items()):
        if status == "SKIP" and msg and stage in ("produce", "verify"):
            notes.append(f"- {c} / `{check}` is n.a.: {msg}")
    for ev in meta.get("events", []):
        notes.append(f"- {short.get(ev['target'], ev['target'])}: {ev['text']}")
    if notes:
        out.append("## Notes")
        out.append("")
        out.extend(dict.fromkeys(notes))
        out.append("")

    out.append("## How to run")
    out.append("")
    out.append("```")
    out.append("compat-tests/run.sh              # this broker only")
    out.append("compat-tests/run.sh --reference  # and Apache Kafka side by side")
    if "cluster" in targets:
        out.append("compat-tests/run.sh --cluster    # this broker as a three-node cluster")
    out.append("```")
    out.append("")
    out.append("Scenarios: " + ", ".join(f"`{p}`" for p in dict.fromkeys(meta.get("scenarios", {}).values()))
               + ". Logs of the last run: `compat-tests/.logs/`.")
    out.append("")
    with open(out_path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
