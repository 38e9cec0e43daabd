"""The ticket journal on a Redis (or Valkey) server (``journal.backend: redis``).

Keys, all under the application's prefix:

- ``t:<ticket>``: the entry (JSON); a finished one expires in Redis itself after the TTL;
- ``r:<ticket>``: an unfinished ticket's record, apart: reads of entries never carry it;
- ``u:<owner>``: the set of an owner's unfinished tickets;
- ``owners``: every owner that may hold unfinished tickets;
- ``lease:<owner>``: present while the owner is alive (expires on its own);
- ``c:<owner>``: tickets others asked the owner to cancel.

Each call is one round trip (a pipeline, or a script where it must be atomic).
"""

from __future__ import annotations

from redis.asyncio import Redis

from multistage.journal import JournalEntry

# Moves a gone owner's unfinished tickets to the caller, unless its lease is back.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local ids = redis.call('SMEMBERS', KEYS[2])
if #ids > 0 then redis.call('SADD', KEYS[3], unpack(ids)) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
return ids
"""


class RedisJournal:
    def __init__(self, url: str, prefix: str) -> None:
        # Bounded waits: a server that is down fails a write (retried), never hangs it.
        self._redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE)

    async def write(self, entries: list[JournalEntry], keep_finished_s: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for entry in entries:
            key, value = self._ticket_key(entry.ticket), entry.model_dump_json(exclude={"record"})
            if entry.finished:
                pipe.set(key, value, px=round(keep_finished_s * 1000))
                pipe.delete(self._record_key(entry.ticket))
                pipe.srem(self._unfinished_key(entry.owner), entry.ticket)
            else:
                pipe.set(key, value)
                if entry.record is not None:
                    pipe.set(self._record_key(entry.ticket), entry.record)
                pipe.sadd(self._unfinished_key(entry.owner), entry.ticket)
        await pipe.execute()

    async def read(self, ticket_ids: list[str]) -> dict[str, JournalEntry]:
        values = await self._redis.mget([self._ticket_key(t) for t in ticket_ids])
        return {
            ticket: JournalEntry.model_validate_json(value)
            for ticket, value in zip(ticket_ids, values, strict=True)
            if value is not None
        }

    async def renew_lease(self, owner: str, lease_s: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._lease_key(owner), 1, px=round(lease_s * 1000))
        pipe.sadd(self._owners_key, owner)
        await pipe.execute()

    async def take_orphans(self, owner: str) -> list[JournalEntry]:
        taken: list[str] = []
        for other in await self._redis.smembers(self._owners_key):
            other = other.decode()
            if other == owner:
                continue
            keys = [
                self._lease_key(other),
                self._unfinished_key(other),
                self._unfinished_key(owner),
                self._owners_key,
            ]
            taken += [t.decode() for t in await self._take(keys=keys, args=[other])]
        if not taken:
            return []
        entries = await self.read(taken)
        records = await self._redis.mget([self._record_key(t) for t in taken])
        found = {t: r.decode() for t, r in zip(taken, records, strict=True) if r is not None}
        return [
            entry.model_copy(update={"owner": owner, "record": found.get(ticket)})
            for ticket, entry in entries.items()
        ]

    async def request_cancel(self, ticket: str, owner: str) -> None:
        await self._redis.sadd(self._cancels_key(owner), ticket)

    async def take_cancel_requests(self, owner: str) -> list[str]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.smembers(self._cancels_key(owner))
        pipe.delete(self._cancels_key(owner))
        requested, _ = await pipe.execute()
        return [ticket.decode() for ticket in requested]

    async def close(self) -> None:
        await self._redis.aclose()

    @property
    def _owners_key(self) -> str:
        return f"{self._prefix}:owners"

    def _ticket_key(self, ticket: str) -> str:
        return f"{self._prefix}:t:{ticket}"

    def _record_key(self, ticket: str) -> str:
        return f"{self._prefix}:r:{ticket}"

    def _unfinished_key(self, owner: str) -> str:
        return f"{self._prefix}:u:{owner}"

    def _lease_key(self, owner: str) -> str:
        return f"{self._prefix}:lease:{owner}"

    def _cancels_key(self, owner: str) -> str:
        return f"{self._prefix}:c:{owner}"
