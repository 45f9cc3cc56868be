#!/usr/bin/env python3
"""Create or delete a topic with the confluent-kafka admin client.

For scenarios whose client has no admin API (kcat):
    topic_admin.py create BOOTSTRAP TOPIC [--partitions N] [--config key=value ...]
    topic_admin.py delete BOOTSTRAP TOPIC
The replication factor is COMPAT_REPLICATION_FACTOR (default 1).
Exits 0 on success; otherwise prints the error the admin client returned and exits 1.
"""

import argparse
import os
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def replication_factor():
    """COMPAT_REPLICATION_FACTOR: replication factor of the topics created (default 1)."""
    v = os.environ.get("COMPAT_REPLICATION_FACTOR", "")
    try:
        n = int(v) if v else 1
    except ValueError:
        n = 0
    if n < 1:
        sys.exit(f"bad COMPAT_REPLICATION_FACTOR: {v!r}")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["create", "delete"])
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap, "client.id": "compat-topic-admin",
                         "log_level": 4})
    try:
        if args.action == "create":
            config = dict(kv.split("=", 1) for kv in args.config)
            fs = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions,
                                               replication_factor=replication_factor(), config=config)],
                                     operation_timeout=15, request_timeout=20)
        else:
            fs = admin.delete_topics([args.topic], operation_timeout=15, request_timeout=20)
        fs[args.topic].result(timeout=30)
    except KafkaException as e:
        err = e.args[0]
        print(f"{args.action} {args.topic}: {err.name()} ({err.code()}): {err.str()}")
        return 1
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        print(f"{args.action} {args.topic}: {e!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
