"""`python -m aksim generate …` makes a fleet file; `python -m aksim serve …` serves it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aksim.generate import generate_fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aksim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a fleet file")
    generate.add_argument("--clusters", type=int, required=True)
    generate.add_argument("--subscriptions", type=int, required=True)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--profile", choices=["demo", "scale"], default="demo")
    generate.add_argument("-o", "--output", type=Path, required=True)

    serve = commands.add_parser("serve", help="serve a fleet file over HTTPS")
    serve.add_argument("--fleet", type=Path, required=True)
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--faults", type=Path, help="JSON faults to start with")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="operations run this many times faster than on Azure",
    )
    serve.add_argument(
        "--ready-file", type=Path, help="written (JSON: endpoint, CA path) once the server listens"
    )
    serve.add_argument("--state-dir", type=Path, help="where the CA and certificates go")

    args = parser.parse_args(argv)
    if args.command == "generate":
        if args.clusters < 1 or args.subscriptions < 1 or args.subscriptions > args.clusters:
            parser.error("need 1 <= --subscriptions <= --clusters")
        fleet = generate_fleet(args.clusters, args.subscriptions, args.seed, args.profile)
        args.output.write_text(fleet.to_json())
        return 0
    # Imported here, not at the top, for the CLI's start-up: the server brings Starlette, uvicorn
    # and cryptography (about 0.2 s), which `generate` and `--help` do not need.
    from aksim.server import serve as run_server

    if args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    run_server(
        args.fleet,
        args.port,
        host=args.host,
        faults_path=args.faults,
        time_scale=args.time_scale,
        ready_file=args.ready_file,
        state_dir=args.state_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
