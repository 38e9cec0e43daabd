"""``multistage``: the service from a shell. ``main`` parses the command line, runs one
command, and turns whatever went wrong into one line and an exit status: never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from multistage_client.cli import commands
from multistage_client.cli.exits import MEANINGS, Exit, for_error
from multistage_client.cli.show import Printer
from multistage_client.http import AsyncClient

URL_VARIABLE = "MULTISTAGE_URL"
API_KEY_VARIABLE = "MULTISTAGE_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"

Command = Callable[[AsyncClient, argparse.Namespace, Printer], Awaitable[Exit]]

_EXAMPLES = """examples:
  multistage example | multistage predict -     stage one at once, then stage two
  multistage predict record.json --no-follow    stage one and a ticket only
  multistage follow TICKET                      wait for a ticket's stage two
  multistage stream camera.jsonl > answers.jsonl
"""


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    show = Printer(args.json)
    try:
        status = asyncio.run(_run(args.command, args, show))
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


async def _run(command: Command, args: argparse.Namespace, show: Printer) -> int:
    try:
        async with AsyncClient(args.url, api_key=args.api_key or None) as client:
            return await command(client, args, show)
    except Exception as error:  # every failure ends as one line, never a traceback
        status, line = for_error(error, args.url)
        show.problem(line)
        return status


def build_parser() -> argparse.ArgumentParser:
    exits = "\n".join(f"  {int(code):<3} {meaning}" for code, meaning in MEANINGS.items())
    parser = argparse.ArgumentParser(
        prog="multistage",
        description="Ask the multistage prediction service: stage one's answer at once, "
        "stage two's when it is ready.",
        epilog=f"{_EXAMPLES}\nexit status:\n{exits}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_options(parser, with_defaults=True)
    subcommands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    # The options work after the command too (multistage predict -  --json).
    options = argparse.ArgumentParser(add_help=False)
    _add_connection_options(options, with_defaults=False)

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help_text, description=help_text, parents=[options])
        sub.set_defaults(command=command)
        return sub

    predict = add("predict", commands.predict, "Predict one record: stage one, then stage two.")
    predict.add_argument("file", metavar="FILE", help="a JSON record, or - for standard input")
    predict.add_argument(
        "--no-follow", action="store_true", help="stop at stage one: print the ticket and exit"
    )
    predict.add_argument(
        "--deadline", type=float, metavar="S", help="skip stage two if it cannot start in S s"
    )
    _add_timeout(predict)
    get = add("get", commands.get, "Print a ticket as it is now, without waiting.")
    get.add_argument("ticket", metavar="TICKET")
    follow = add("follow", commands.follow, "Wait for a ticket's stage two and print it.")
    follow.add_argument("ticket", metavar="TICKET")
    _add_timeout(follow)
    cancel = add("cancel", commands.cancel, "Cancel a ticket's stage two.")
    cancel.add_argument("ticket", metavar="TICKET")
    stream = add(
        "stream",
        commands.stream,
        "Send a JSON lines file's records over one stream session; print every answer as a "
        "JSON line (progress on standard error, on a terminal).",
    )
    stream.add_argument("file", metavar="FILE.jsonl", help="one JSON record per line, or -")
    stream.add_argument(
        "--interval",
        type=float,
        default=0.1,
        metavar="S",
        help="seconds between records, as a feed sends them (default 0.1; 0: at once)",
    )
    add("models", commands.models, "Print the models serving each stage and the input schema.")
    add("example", commands.example, "Print an example record (JSON), to edit or pipe.")
    return parser


def _add_connection_options(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(os.environ.get(URL_VARIABLE, DEFAULT_URL)),
        help=f"the service (default: ${URL_VARIABLE}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=default(os.environ.get(API_KEY_VARIABLE)),
        metavar="KEY",
        help=f"the API key, if the service asks for one (default: ${API_KEY_VARIABLE})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON, one object per line, for scripts",
    )


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="wait at most S seconds for stage two (default 60)",
    )
