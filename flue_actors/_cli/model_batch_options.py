"""``--model-batches`` and its window settings, for every command that runs workflows
(``serve``; ``batch`` takes the same options)."""

from __future__ import annotations

import argparse
import math

from ..models._message_batches import MAX_BATCH_REQUESTS, ModelBatches

__all__ = ["add_model_batch_options", "model_batches_from"]


def add_model_batch_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "model batches", "model turns through the Message Batches API, at half the price"
    )
    group.add_argument(
        "--model-batches",
        action="store_true",
        help="send every anthropic/... model turn through the Message Batches API",
    )
    defaults = ModelBatches()
    group.add_argument(
        "--batch-max-requests",
        type=int,
        default=defaults.max_requests,
        help=f"a batch goes out with this many turns (1 to {MAX_BATCH_REQUESTS}; "
        f"default {defaults.max_requests})",
    )
    group.add_argument(
        "--batch-window",
        type=float,
        default=defaults.window,
        help="... or this many seconds after its first turn began to wait (inf: by count "
        f"alone; default {defaults.window:g})",
    )
    group.add_argument(
        "--batch-poll-interval",
        type=float,
        default=defaults.poll_interval,
        help=f"first poll of a batch after this many seconds (default {defaults.poll_interval:g})",
    )
    group.add_argument(
        "--batch-max-poll-interval",
        type=float,
        default=defaults.max_poll_interval,
        help="polls back off, doubling, up to this many seconds "
        f"(default {defaults.max_poll_interval:g})",
    )
    group.add_argument(
        "--batch-retries",
        type=int,
        default=defaults.retries,
        help="a request that expired or failed transiently in its batch is sent again this "
        f"many times (default {defaults.retries})",
    )
    group.add_argument(
        "--batch-fallback",
        choices=["batch", "messages"],
        default=defaults.fallback,
        help="where a request is sent again: the next batch, or the Messages API at full price",
    )


def model_batches_from(args: argparse.Namespace) -> ModelBatches | None:
    """The settings the options give (``None`` without ``--model-batches``); a ``ValueError``
    saying which is out of range."""
    if not args.model_batches:
        return None
    if math.isnan(args.batch_window) or math.isnan(args.batch_poll_interval):
        raise ValueError("--batch-window and --batch-poll-interval are numbers of seconds")
    return ModelBatches(
        max_requests=args.batch_max_requests,
        window=args.batch_window,
        poll_interval=args.batch_poll_interval,
        max_poll_interval=args.batch_max_poll_interval,
        retries=args.batch_retries,
        fallback=args.batch_fallback,
    )
