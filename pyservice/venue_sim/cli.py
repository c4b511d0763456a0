"""`copyengine venue-sim`: run the venue simulator against an engine."""

from __future__ import annotations

import argparse
import logging
import math
import sys

from pyservice import logs, venue_auth
from pyservice.endpoints import parse_endpoint
from pyservice.protocol import DEFAULT_MAX_FRAME
from pyservice.runtime import run_until_signal, tune_gc
from pyservice.venue_sim import fixed
from pyservice.venue_sim.config import VenueConfig, load_books, load_script
from pyservice.venue_sim.venue import VenueSim
from pyservice.venue_time import parse_time


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _percent(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100]: {text}")
    return value


def _decimal(text: str) -> str:
    try:
        fixed.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _factor(text: str) -> float:
    value = _positive(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite: {text}")
    return value


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _endpoint(text: str) -> str:
    try:
        parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The venue-sim options, for a `copyengine venue-sim` subparser too."""
    parser.add_argument(
        "--connect",
        type=_endpoint,
        default="tcp://127.0.0.1:7400",
        help="the engine's address: tcp://HOST:PORT or unix:PATH (default %(default)s)",
    )
    parser.add_argument(
        "--venue-key-file",
        metavar="PATH",
        help=f"the key that signs the hello (at least {venue_auth.MIN_KEY_BYTES} bytes; default ${venue_auth.KEY_ENV}; "
        "neither: unsigned, for an engine with --insecure-listen)",
    )
    parser.add_argument("--session", help="session name (default: random, fixed for this run)")
    parser.add_argument("--books", metavar="PATH", help="providers and follows (JSON); funds the followers")
    parser.add_argument(
        "--funding",
        type=_decimal,
        default="1",
        help="each follow is an account (follower, provider) holding FUNDING x its allocation (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds marks, bots and partial fills")
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=10.0,
        help="provider executions per second, all bots (default %(default)s; 0: none)",
    )
    parser.add_argument(
        "--mark-interval",
        type=_non_negative,
        default=0.5,
        help="seconds between mark moves (default %(default)s; 0: fixed marks)",
    )
    parser.add_argument("--duration", type=_positive, help="stop after this many seconds")
    parser.add_argument("--heartbeat", type=_positive, default=1.0, help="seconds between heartbeats")
    parser.add_argument(
        "--dead-after", type=_positive, default=5.0, help="drop the connection after this many silent seconds"
    )
    parser.add_argument(
        "--partial-fill-pct", type=_percent, default=0.0, help="percent of fillable orders that fill only in part"
    )
    parser.add_argument(
        "--fill-latency-ms", type=_non_negative, default=0.0, help="delay between receiving orders and reporting them"
    )
    parser.add_argument("--record", metavar="PATH", help="append every order and its outcome (JSON Lines)")
    parser.add_argument(
        "--script", metavar="PATH", help="JSON Lines of instrument/mark/exec entries and pauses, instead of bots"
    )
    parser.add_argument(
        "--clock",
        type=_factor,
        default=1.0,
        metavar="FACTOR",
        help="simulated seconds per real second for the entries' ts (default %(default)s; 86400: a day per second)",
    )
    parser.add_argument(
        "--start",
        type=_time,
        metavar="TIME",
        help="the clock's start, YYYY-MM-DDTHH:MM:SS[.ffffff]Z (default: now); a script's own times"
        " are stamped as they are, so start at or before them",
    )
    parser.add_argument(
        "--disconnect-at-seq", type=int, metavar="N", help="fault: cut the connection in the middle of entry N (once)"
    )
    parser.add_argument(
        "--garbage-at-seq", type=int, metavar="N", help="fault: send a malformed frame before entry N (once)"
    )
    parser.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, help="largest accepted frame payload")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", choices=["plain", "json"], default="plain")


def config_from_args(args: argparse.Namespace) -> VenueConfig:
    """ConfigError if the books or script file is unusable, VenueKeyError if the key is."""
    return VenueConfig(
        connect=args.connect,
        session=args.session,
        seed=args.seed,
        rate=args.rate,
        mark_interval=args.mark_interval,
        duration=args.duration,
        heartbeat=args.heartbeat,
        dead_after=args.dead_after,
        books=load_books(args.books) if args.books else None,
        funding=args.funding,
        partial_fill_pct=args.partial_fill_pct,
        fill_latency_ms=args.fill_latency_ms,
        record=args.record,
        script=load_script(args.script) if args.script else None,
        clock=args.clock,
        start_us=args.start,
        disconnect_at_seq=args.disconnect_at_seq,
        garbage_at_seq=args.garbage_at_seq,
        max_frame=args.max_frame,
        key=venue_auth.load_key(args.venue_key_file),
    )


def run(args: argparse.Namespace) -> int:
    logs.setup(args.log_format, args.log_level)
    try:
        venue = VenueSim(config_from_args(args))
    except ValueError as exc:  # ConfigError, VenueKeyError, or a value the venue cannot use
        print(f"venue-sim: {exc}", file=sys.stderr)
        return 2
    if venue.config.key is None:
        logging.getLogger("copyengine.venue").warning(
            f"no venue key (--venue-key-file or ${venue_auth.KEY_ENV}): the hello is not signed, "
            "so only an engine with --insecure-listen takes this venue"
        )
    tune_gc()
    return run_until_signal(venue.run(), venue.stop)


def main(argv: list[str] | None = None) -> int:
    # no abbreviations: `--venue-key SECRET` must not pass for `--venue-key-file`
    parser = argparse.ArgumentParser(prog="copyengine venue-sim", description=__doc__, allow_abbrev=False)
    add_arguments(parser)
    return run(parser.parse_args(argv))
