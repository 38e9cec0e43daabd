"""The ticket store: takes stage-two work, follows each ticket to its end, holds its result.

Ingress replicas mint signed ticket ids themselves and send their submissions here
after answering, many per call. The store, not the ingress, makes the stage-two call,
so the call's result is owned by this long-lived replica: any ingress replica can
resolve any ticket, and a ticket outlives the ingress replica that issued it.

Every rule of a ticket's life is ``multistage/store/lifecycle.py``'s (plain Python,
tested without Ray); this deployment binds it to Serve: the heavy deployment's handle
as stage two, each call's result held by ``ObjectRef`` (the fast path: read from Ray's
object store, never copied here), the background work started with the replica, outside
any request (Ray cancels a cancelled request's calls recursively, down to calls made by
sub-requests that have already returned), and the store's metrics.

What a fault costs: a heavy replica's death retries its tickets (``max_attempts``);
this replica's death costs nothing with a durable journal (its tickets are run again
elsewhere, results already written stay readable) and every ticket it holds with the
memory journal (they then read ``lost``); tickets still on their way from an ingress
replica are sent again to another replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import psutil
import ray
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from multistage.config import TicketPolicy
from multistage.journal import JournalArgs, open_journal
from multistage.metrics.exported import TicketMetrics
from multistage.models.records import Record
from multistage.ray_private import object_ref_once_accepted
from multistage.store.lifecycle import TicketLifecycle
from multistage.store.stage_two import Outcome, StageTwoReplicaLost
from multistage.tickets.ids import TicketIds
from multistage.tickets.wire import StoreLoad, Submission, WaitReply
from multistage_client.errors import one_line
from multistage_client.models import TicketView


class StoreStats(BaseModel):
    held: int = Field(description="Tickets in memory, finished ones included.")
    unfinished: int
    rss_bytes: int = Field(description="Resident memory of the store's process.")


@serve.deployment(
    num_replicas=1,
    # Shared waits of every ingress replica wait here: they must never crowd out submissions.
    max_ongoing_requests=2000,
    ray_actor_options={"num_cpus": 0.1},
)
class TicketStore:
    async def __init__(
        self,
        heavy: DeploymentHandle,
        policy: TicketPolicy,
        secret: bytes,
        journal: JournalArgs | None = None,
    ) -> None:
        context = serve.get_replica_context()
        journal = journal or JournalArgs()
        if not journal.durable and context.world_size != 1:
            # Without a journal a ticket lives only in the memory of the replica that
            # took it: reads landing on another replica would not find it.
            raise ValueError(
                f"TicketStore with the memory journal must run one replica, "
                f"not {context.world_size}; configure a durable journal for more"
            )
        self._heavy = heavy
        self._metrics = TicketMetrics()
        self._tickets = TicketLifecycle(
            owner=context.replica_id.unique_id,
            policy=policy,
            ids=TicketIds(secret),
            journal=open_journal(journal),
            journal_args=journal,
            stage_two=self._call_heavy,
            metrics=self._metrics,
        )
        await self._tickets.start()
        self._gauges = asyncio.create_task(self._report_unfinished_forever())

    async def submit_many(self, submissions: list[Submission]) -> StoreLoad:
        """Take stage-two work; answers the load, by which ingress replicas admit more."""
        return await self._tickets.submit_many(submissions)

    async def view(self, ticket_id: str) -> TicketView | None:
        """The ticket's state now; None if this service never issued the id."""
        return await self._tickets.view(ticket_id)

    async def wait_ended(self, ticket_ids: list[str], wait_s: float) -> WaitReply:
        """Views of those of the tickets that have ended, waiting up to ``wait_s`` for one
        to end if none has; one such call serves every waiting client of an ingress replica.
        """
        return await self._tickets.wait_ended(ticket_ids, wait_s)

    async def cancel_unstarted(self, ticket_ids: list[str]) -> None:
        """Cancel those of the tickets that stage two has not started."""
        await self._tickets.cancel_unstarted(ticket_ids)

    async def cancel(self, ticket_id: str) -> TicketView | None:
        """Cancel an unfinished ticket; its state afterwards, None if never issued."""
        return await self._tickets.cancel(ticket_id)

    async def stats(self) -> StoreStats:
        return StoreStats(
            held=self._tickets.held,
            unfinished=self._tickets.unfinished,
            rss_bytes=psutil.Process().memory_info().rss,
        )

    def _call_heavy(
        self, records: list[Record], deadlines: list[float | None], tickets: list[str]
    ) -> _HeavyCall:
        """Stage two: a call to the heavy deployment's ``predict_many``."""
        return _HeavyCall(self._heavy.predict_many.remote(records, deadlines, tickets))

    async def _report_unfinished_forever(self) -> None:
        while True:
            self._metrics.unfinished(self._tickets.unfinished)
            await asyncio.sleep(1.0)


class _HeavyCall:
    """One call to the heavy deployment. Its result stays in Ray's object store, held by
    reference (dropping the last ticket that holds this call frees it)."""

    def __init__(self, response: DeploymentResponse) -> None:
        self._response: DeploymentResponse | None = response
        self._ref: ray.ObjectRef | None = None

    async def accepted(self) -> None:
        try:
            self._ref = await object_ref_once_accepted(self._response)
        except RayActorError as error:
            raise StageTwoReplicaLost(one_line(error)) from None

    async def outcomes(self) -> Sequence[Outcome]:
        try:
            outcomes = await self._ref
        except RayActorError as error:
            raise StageTwoReplicaLost(one_line(error)) from None
        self._response = None  # ended: nothing left to cancel
        return outcomes

    def cancel(self) -> None:
        if self._response is not None:
            self._response.cancel()
