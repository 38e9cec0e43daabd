"""Ticket ids: 128 random bits, the issue time, and a tag only the issuing service makes."""

import base64

from multistage.tickets.ids import ID_LENGTH, TicketIds, new_secret

NOW = 1_795_432_179.711


def test_an_id_gives_back_its_issue_time():
    ids = TicketIds(new_secret())
    ticket = ids.issue(NOW)
    assert len(ticket) == ID_LENGTH
    assert ids.issued_at(ticket) == NOW


def test_ids_share_no_random_part():
    ids = TicketIds(new_secret())
    tickets = [ids.issue(NOW) + "=" for _ in range(1000)]  # 59 characters: one pad
    randoms = {base64.urlsafe_b64decode(ticket)[:16] for ticket in tickets}
    assert len(randoms) == 1000


def test_forged_altered_and_foreign_ids_are_not_ours():
    ids = TicketIds(new_secret())
    ticket = ids.issue(NOW)
    flipped = ticket[:10] + ("A" if ticket[10] != "A" else "B") + ticket[11:]
    for candidate in (
        flipped,
        TicketIds(new_secret()).issue(NOW),  # another service's (or an old build's) id
        ticket[:-1],
        ticket + "A",
        "é" * ID_LENGTH,
        "!" * ID_LENGTH,
        "",
    ):
        assert ids.issued_at(candidate) is None, candidate


def test_an_id_belongs_to_the_tenant_it_was_issued_to_only():
    ids = TicketIds(new_secret())
    ticket = ids.issue(NOW, tenant="acme")
    assert ids.issued_at(ticket) == NOW  # any replica of the store reads it
    assert ids.issued_to(ticket, "acme")
    assert not ids.issued_to(ticket, "globex")
    assert not ids.issued_to(ids.issue(NOW), "acme")  # the default tenant's
    assert not ids.issued_to("made-up", "acme")
