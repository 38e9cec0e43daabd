"""The ingress's calls to the ticket store, each bounded in time, over gRPC by value
(``store_calls.by_value``).

A store that is restarting or swamped must not hold a client past its wait: reads give
up after ``timeout_s`` beyond the wait they asked for (503, ``Retry-After``), and
submissions are sent again by their queue. A call interrupted by the store's death is
read as 'unavailable', not as 'lost': tickets on their way to the store survive its
restart, and the store that replaces it answers truthfully for the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from multistage.http.errors import TicketStoreUnavailable
from multistage.ray_private import by_value
from multistage.tickets.wire import StoreLoad, Submission, WaitReply
from multistage_client.models import TicketView

logger = logging.getLogger("ray.serve")


class TicketStoreClient:
    def __init__(self, store: DeploymentHandle, timeout_s: float, grpc: bool = True) -> None:
        self._store = by_value(store) if grpc else store
        self._timeout_s = timeout_s

    async def submit(self, submissions: list[Submission]) -> StoreLoad:
        """Hand the submissions to the store (those it already has are ignored there)."""
        return await self._call(lambda: self._store.submit_many.remote(submissions))

    async def view(self, ticket: str) -> TicketView:
        return await self._read(lambda: self._store.view.remote(ticket))

    async def cancel(self, ticket: str) -> TicketView:
        return await self._read(lambda: self._store.cancel.remote(ticket))

    async def cancel_unstarted(self, ticket_ids: list[str]) -> None:
        """Cancel those of the tickets no heavy replica has started; best effort (a store
        that does not answer runs them, as it would any ticket)."""
        try:
            await self._call(lambda: self._store.cancel_unstarted.remote(ticket_ids))
        except (asyncio.TimeoutError, RayActorError):
            logger.warning("the ticket store did not cancel %d unstarted tickets", len(ticket_ids))

    async def wait_ended(self, ticket_ids: list[str], wait_s: float) -> WaitReply:
        return await self._call(lambda: self._store.wait_ended.remote(ticket_ids, wait_s), wait_s)

    async def _read(self, call: Callable[[], DeploymentResponse]) -> TicketView:
        try:
            return await self._call(call)
        except (asyncio.TimeoutError, RayActorError):
            raise TicketStoreUnavailable() from None

    async def _call(self, call: Callable[[], DeploymentResponse], wait_s: float = 0.0):
        response = call()
        try:
            return await asyncio.wait_for(response, timeout=wait_s + self._timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            raise
