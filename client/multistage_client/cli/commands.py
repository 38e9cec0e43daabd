"""The command line's commands: each sends its requests, prints what came back, and returns
the exit status; what goes wrong on the way is raised, for ``main`` to say in one line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

from multistage_client.cli.exits import Exit, for_status
from multistage_client.cli.records import read_record, read_records
from multistage_client.cli.show import Printer
from multistage_client.errors import StageTwoFailed
from multistage_client.http import AsyncClient
from multistage_client.models import UNFINISHED, PredictResponse, TicketView
from multistage_client.protocol import SessionSettings
from multistage_client.streams import StreamMessage


async def predict(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    answer = await client.predict(read_record(args.file), deadline_s=args.deadline)
    stage_two = answer.stage_two
    show.stage_one(
        PredictResponse(ticket=answer.ticket, stage_one=answer.stage_one, stage_two=stage_two)
    )
    if answer.ticket is None:
        raise StageTwoFailed(None, stage_two.status, stage_two.error)
    if args.no_follow:
        return Exit.OK
    return await _follow(client, answer.ticket, args.timeout, show)


async def get(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    view = await client.ticket(args.ticket)
    if view.status in UNFINISHED:
        show.ticket(view)
        return Exit.NOT_READY
    return _ended(view, show)


async def follow(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    return await _follow(client, args.ticket, args.timeout, show)


async def cancel(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    view = await client.cancel(args.ticket)
    show.ticket(view)
    return Exit.OK if view.status == "canceled" else for_status(view.status)


async def stream(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    records = read_records(args.file)
    progress = Progress(len(records), sys.stderr.isatty())
    settings = SessionSettings(frame_interval_s=args.interval) if args.interval > 0 else None

    async def paced() -> AsyncIterator[dict]:
        for record in records:
            yield record
            progress.sent += 1
            await asyncio.sleep(args.interval)

    async for message in client.stream(paced(), settings):
        show.raw(message)
        progress.note(message)
    progress.finish()
    worst = progress.worst()
    if worst != Exit.OK:
        show.problem(progress.summary())
    return worst


async def models(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    show.models(await client.models())
    return Exit.OK


async def example(client: AsyncClient, args: argparse.Namespace, show: Printer) -> Exit:
    show.raw((await client.models()).example_request)
    return Exit.OK


async def _follow(client: AsyncClient, ticket: str, timeout: float, show: Printer) -> Exit:
    try:
        view = await client.wait(ticket, timeout)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
        raise TimeoutError(
            f"stage two of ticket {ticket} had not ended after {timeout:g} s;"
            f" follow it again with: multistage follow {ticket}"
        ) from None
    return _ended(view, show)


def _ended(view: TicketView, show: Printer) -> Exit:
    if view.status == "completed":
        show.ticket(view)
        return Exit.OK
    if show.as_json:
        show.ticket(view)
    raise StageTwoFailed(view.ticket, view.status, view.error)


class Progress:
    """How far a stream has got: a line kept up to date on a terminal, and each record's end."""

    def __init__(self, total: int, on_terminal: bool) -> None:
        self.total = total
        self.sent = 0
        self.answered = 0
        self.ended: dict[str, int] = {}  # records, by the type of their last message
        self._on_terminal = on_terminal

    def note(self, message: StreamMessage) -> None:
        if message.type == "stage1":
            self.answered += 1
        else:
            self.ended[message.type] = self.ended.get(message.type, 0) + 1
        self._draw()

    def finish(self) -> None:
        if self._on_terminal:
            print(file=sys.stderr)

    def worst(self) -> Exit:
        """The exit status of the record that ended worst (an error message: refused)."""
        exits = (Exit.REFUSED if kind == "error" else for_status(kind) for kind in self.ended)
        return max(exits, default=Exit.OK)

    def summary(self) -> str:
        completed = self.ended.get("stage2", 0)
        others = ", ".join(f"{n} {kind}" for kind, n in self.ended.items() if kind != "stage2")
        return f"{self.total - completed} of {self.total} records did not complete: {others}"

    def _draw(self) -> None:
        if not self._on_terminal:
            return
        ended = sum(self.ended.values())
        line = (
            f"sent {self.sent}/{self.total}   stage one {self.answered}   ended {ended}"
            f" ({self.ended.get('stage2', 0)} completed)"
        )
        print(f"\r{line}", end="", file=sys.stderr, flush=True)
