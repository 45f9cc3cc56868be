#!/usr/bin/env python3
"""An idempotent producer sends 100,000 records while the broker is restarted once; the
topic must then hold each record exactly once.

Usage:
    idempotent_restart.py BROKER_BIN [--records N] [--kill]

Starts BROKER_BIN itself (a fresh data directory, a free port), produces N records with
confluent-kafka (`enable.idempotence=true`, acks=all, unlimited retries) keyed by their
number, and when about a third have been acknowledged restarts the broker (SIGTERM, or
SIGKILL with --kill) while the producer keeps sending. Then reads the whole topic back and
checks: every record acknowledged, each number present exactly once, per-partition order
of acknowledged offsets. Prints `PASS name` / `FAIL name: why`; exits non-zero on a failure.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

failures = 0


def check(name, ok, why=""):
    global failures
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}: {why}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Broker:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.port = free_port()
        self.config = os.path.join(workdir, "broker.json")
        self.log = open(os.path.join(workdir, "broker.log"), "ab")
        with open(self.config, "w") as f:
            json.dump({"data_dir": os.path.join(workdir, "data"),
                       "server": {"host": "127.0.0.1", "port": str(self.port)}}, f)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "--config", self.config],
                                     stdout=self.log, stderr=self.log)
        if not wait_port(self.port):
            raise RuntimeError("the broker did not start")

    def stop(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("broker_bin")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--kill", action="store_true", help="restart with SIGKILL instead of SIGTERM")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="idempotent-restart-")
    broker = Broker(args.broker_bin, workdir)
    broker.start()
    bootstrap = f"127.0.0.1:{broker.port}"
    topic = "idempotent-restart"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)

        acked = {}
        errors = []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                acked[int(msg.key())] = (msg.partition(), msg.offset())

        producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.max.ms": 500,
        })
        restarted = False
        restart_at = args.records // 3
        for n in range(args.records):
            while True:
                try:
                    producer.produce(topic, key=str(n).encode(), value=f"value-{n}".encode(),
                                     on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            if not restarted and len(acked) >= restart_at:
                # Restart with requests in flight: retries must not duplicate records.
                broker.stop(signal.SIGKILL if args.kill else signal.SIGTERM)
                broker.start()
                restarted = True
        left = producer.flush(120)
        check("restarted_mid_stream", restarted, "the restart point was never reached")
        check("all_acknowledged", left == 0 and not errors and len(acked) == args.records,
              f"{len(acked)} of {args.records} acknowledged, {left} in queue, errors: {errors[:3]}")

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "idempotent-restart-check",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "enable.partition.eof": True})
        ends = {}
        for p in range(3):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        seen = {}
        duplicates = 0
        done = set()
        deadline = time.time() + 120
        while len(done) < 3 and time.time() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                continue
            n = int(msg.key())
            if n in seen:
                duplicates += 1
            seen[n] = (msg.partition(), msg.offset())
        consumer.close()
        total = sum(ends.values())
        print(f"records={args.records} stored={total} distinct={len(seen)} duplicates={duplicates} "
              f"lost={args.records - len(seen)}", flush=True)
        check("exactly_once", duplicates == 0 and len(seen) == args.records and total == args.records,
              f"stored {total}, distinct {len(seen)}, duplicates {duplicates}")
        mismatched = [n for n, at in acked.items() if seen.get(n) != at]
        check("acknowledged_offsets_hold_the_record", not mismatched,
              f"{len(mismatched)} acknowledged offsets hold another record, e.g. {mismatched[:3]}")
    finally:
        broker.stop(signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
