"""The ticket journal: what the ticket store writes down so that no ticket dies with it.

Each ticket store replica holds its tickets in memory (and stage two's results by Ray
object reference: the fast path) and writes every change of a ticket to a journal, in
batches. The journal holds a ticket's record until stage two has run it, its status and
timestamps, and its result once completed. A replica that starts, or one whose peer
stopped renewing its lease, takes the unfinished tickets of owners that are gone and
runs them again (at least once; ``attempts`` counts every run).

- ``entry``: one ticket as a journal holds it, and its record's encoding;
- ``interface``: what the store needs of a backend (``TicketJournal``);
- ``memory``, ``sqlite``, ``redis``: the backends (``JournalArgs.backend``);
- ``factory``: the configuration (``JournalArgs``) and the backend it names.
"""

from multistage.journal.entry import JournalEntry, decode_record, encode_record
from multistage.journal.factory import JournalArgs, open_journal
from multistage.journal.interface import TicketJournal
from multistage.journal.memory import MemoryJournal

__all__ = [
    "JournalArgs",
    "JournalEntry",
    "MemoryJournal",
    "TicketJournal",
    "decode_record",
    "encode_record",
    "open_journal",
]
