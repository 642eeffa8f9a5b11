"""``stateline worker``: a Kafka consumer-group member that steps events and answers them."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from .._errors import ConfigError, StatelineError, describe
from ._config_flags import add_config_flags, config_from_args
from ._serve import add_model_flags, limit_threads, model_configs

_EPILOG = """example:
  stateline worker --model model --brokers kafka-1:9092,kafka-2:9092 \\
      --input sensor-events --output sensor-answers --group stateline \\
      --checkpoint-dir /mnt/shared/stateline --metrics-port 9400

Each input message is keyed by its stream id and holds one event as JSON,
{"values": [20.5], "seq": 7}, or a batch of columns as an Arrow IPC stream.
One answer per event goes to --output, keyed by stream id, with the input
partition and offset in its headers (stateline.kafka.AnswerReader drops the
repeats a moved partition causes). Run more workers with the same --group and
--checkpoint-dir (a folder every worker reaches) to spread the partitions.
--kafka KEY=VALUE passes librdkafka settings (security.protocol, sasl.*, ...).
See docs/scaling.md.
"""


def worker_parser() -> argparse.ArgumentParser:
    from ..kafka import WorkerConfig

    parser = argparse.ArgumentParser(
        prog="stateline worker",
        description="Consume events keyed by stream id from a Kafka topic, step each input "
        "partition's streams through the model (and its detector) with checkpointed state, "
        "and produce one answer per event to another topic.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_flags(parser, WorkerConfig, skip=("detector", "online"))
    add_model_flags(parser, online="keep each partition's model learning from its streams")
    parser.add_argument(
        "--kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for the consumer and producer (repeatable)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this long (default: run until stopped)",
    )
    return parser


def run_worker(argv: Sequence[str]) -> None:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as error:  # pragma: no cover - the kafka extra is part of dev
        raise StatelineError(
            "stateline worker needs confluent-kafka.\n  Fix: pip install 'stateline[kafka]'"
        ) from error
    from ..kafka import Worker, WorkerConfig

    args = worker_parser().parse_args(list(argv))
    options = {}
    for item in args.kafka:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(describe("--kafka", "KEY=VALUE", repr(item), problem="is invalid."))
        options[key.strip()] = value
    detector, online = model_configs(args)
    config = config_from_args(WorkerConfig, args, detector=detector, online=online)
    level = os.environ.get("STATELINE_LOG", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    limit_threads(1)
    worker = Worker(config, kafka=options)
    print(f"stateline worker: group {config.group}, {config.input} -> {config.output}", flush=True)
    worker.run(seconds=args.seconds)
