"""The `copyengine` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _replay(args: argparse.Namespace) -> int:
    from pyservice.replay import ScenarioError, replay_jsonl

    try:
        text = Path(args.scenario).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"invalid scenario: cannot read {args.scenario}: {exc}", file=sys.stderr)
        return 2
    try:
        out = replay_jsonl(text)
    except ScenarioError as exc:
        print(f"invalid scenario: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if not args.core:
        print("only `copyengine bench --core` exists so far (the socket benchmark is next)", file=sys.stderr)
        return 2
    from pyservice.bench.core import run_core_bench

    result = run_core_bench(args.followers, iterations=args.iterations, python_iterations=args.python_iterations)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if result["agree"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copyengine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="run the engine core over a scenario file, print every outcome")
    replay.add_argument("scenario", help="scenario JSON (format v1, see pyservice/scenarios/FORMAT.md)")
    replay.set_defaults(func=_replay)

    bench = sub.add_parser("bench", help="benchmarks; --core: one fan-out, Rust core vs Python reference")
    bench.add_argument("--core", action="store_true", help="benchmark the in-process fan-out")
    bench.add_argument("--followers", type=int, default=10_000)
    bench.add_argument("--iterations", type=int, default=300, help="timed Rust fan-outs")
    bench.add_argument("--python-iterations", type=int, default=5, help="timed reference fan-outs")
    bench.add_argument("--json", metavar="PATH", help="also write the result here")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
