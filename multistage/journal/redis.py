"""The ticket journal on a Redis (or Valkey) server (``journal.backend: redis``).

Keys, all under the application's prefix:

- ``t:<ticket>``: the entry (JSON); a finished one expires in Redis itself when its
  ticket's life (``timeout_s`` + ``result_ttl_s`` from issue) ends;
- ``r:<ticket>``: an unfinished ticket's record, apart: reads of entries never carry it;
- ``u:<owner>``: the set of an owner's unfinished tickets;
- ``owners``: every owner that may hold unfinished tickets;
- ``lease:<owner>``: present while the owner is alive (expires on its own);
- ``c:<owner>``: tickets others asked the owner to cancel.

Each call is one round trip (a pipeline, or a script where it must be atomic).
"""

from __future__ import annotations

from redis.asyncio import Redis

from multistage.journal.entry import JournalEntry

# Moves a gone owner's unfinished tickets to the caller, unless its lease is back.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local ids = redis.call('SMEMBERS', KEYS[2])
if #ids > 0 then redis.call('SADD', KEYS[3], unpack(ids)) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
return ids
"""

# Writes each entry, unless the journal holds its ticket finished or as another owner's
# (not in this owner's unfinished set); returns the tickets refused. Per entry: 3 keys
# (entry, record, owner's unfinished set) and 5 arguments.
_WRITE = """
local refused = {}
for i = 0, #KEYS / 3 - 1 do
  local entry, record, unfinished = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local ticket, finished, value = ARGV[5 * i + 1], ARGV[5 * i + 2], ARGV[5 * i + 3]
  local data, expires_at_ms = ARGV[5 * i + 4], ARGV[5 * i + 5]
  if redis.call('EXISTS', entry) == 1 and redis.call('SISMEMBER', unfinished, ticket) == 0 then
    refused[#refused + 1] = ticket
  elseif finished == '1' then
    redis.call('SET', entry, value, 'PXAT', expires_at_ms)
    redis.call('DEL', record)
    redis.call('SREM', unfinished, ticket)
  else
    redis.call('SET', entry, value)
    if data ~= '' then redis.call('SET', record, data) end
    redis.call('SADD', unfinished, ticket)
  end
end
return refused
"""


class RedisJournal:
    def __init__(self, url: str, prefix: str) -> None:
        # Bounded waits: a server that is down fails a write (retried), never hangs it.
        self._redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE)
        self._write = self._redis.register_script(_WRITE)

    async def write(self, entries: list[JournalEntry], keep_s: float) -> set[str]:
        keys: list[str] = []
        args: list[str | int] = []
        for entry in entries:
            ticket = entry.ticket
            keys += [
                self._ticket_key(ticket),
                self._record_key(ticket),
                self._unfinished_key(entry.owner),
            ]
            value = entry.model_dump_json(exclude={"record"})
            expires_at_ms = round((entry.submitted_at + keep_s) * 1000)
            args += [ticket, int(entry.finished), value, entry.record or "", expires_at_ms]
        refused = await self._write(keys=keys, args=args)
        return {ticket.decode() for ticket in refused}

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
