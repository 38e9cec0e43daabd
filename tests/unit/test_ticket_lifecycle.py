"""Every rule of a ticket's life (``multistage/store/lifecycle.py``), on each journal,
with stage two and the journal's faults driven directly."""

from __future__ import annotations

import asyncio

import pytest

from multistage.store.lifecycle import JournalUnavailable
from multistage.tickets import errors as ticket_errors
from multistage_client.models import ErrorBody

from .lifecycle_harness import LEASE_S, ended, issue, submission
from .stage_two import ScriptedStageTwo, answer_errors, release
from .waits import until

pytestmark = pytest.mark.anyio


# Taking work


async def test_a_submission_is_run_once_and_its_result_read(stores, clock):
    store, stage_two, _ = await stores.start()
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    await store.submit_many([submission(ticket)])  # sent again: its first answer was lost
    view = await ended(store, ticket)
    assert view.status == "completed"
    assert view.result.label == "ok" and view.attempts == 1
    assert stage_two.tickets_run == [ticket]
    assert (await store.view(ticket)) == view


async def test_admission_is_exact_past_the_stores_limit(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True), max_unfinished=2)
    tickets = [issue(clock) for _ in range(3)]
    load = await store.submit_many([submission(t) for t in tickets])
    assert load.unfinished == 2 and load.room == 0
    refused = await store.view(tickets[2])
    assert refused.status == "rejected"
    assert refused.error.error == ticket_errors.stage_two_full(2).error
    assert [(await store.view(t)).status for t in tickets[:2]] == ["pending", "pending"]


async def test_a_tenant_past_its_cap_is_refused_while_others_keep_room(stores, clock):
    store, _, _ = await stores.start(ScriptedStageTwo(hold=True))
    acme = [issue(clock, "acme") for _ in range(2)]
    other = issue(clock, "globex")
    await store.submit_many([submission(t, tenant="acme", tenant_limit=1) for t in acme])
    await store.submit_many([submission(other, tenant="globex", tenant_limit=1)])
    statuses = [(await store.view(t)).status for t in [*acme, other]]
    assert statuses == ["pending", "rejected", "pending"]
    assert (await store.view(acme[1])).error.error == "tenant_full"


async def test_a_submission_later_than_its_timeout_is_not_taken_and_reads_lost(stores, clock):
    store, stage_two, _ = await stores.start(submission_timeout_s=1, resubmit_grace_s=1)
    ticket = issue(clock)
    clock.advance(2)
    await store.submit_many([submission(ticket)])
    assert (await store.view(ticket)).status == "lost"
    assert stage_two.calls == []


# Reading ids


async def test_an_id_never_issued_reads_as_none(stores):
    store, _, _ = await stores.start()
    forged = "x" * len(issue(lambda: 0.0))
    assert await store.view(forged) is None
    assert await store.cancel(forged) is None
    assert (await store.wait_ended([forged], wait_s=0.01)).ended == []


async def test_an_id_issued_but_not_yet_submitted_reads_pending_then_lost(stores, clock):
    store, _, _ = await stores.start(submission_timeout_s=1, resubmit_grace_s=1)
    clock.advance(5)  # the store started before this id was issued
    ticket = issue(clock)
    assert (await store.view(ticket)).status == "pending"  # on its way
    clock.advance(2)
    lost = await store.view(ticket)
    assert lost.status == "lost" and lost.error.error == "ticket_lost"


# Sharing calls


async def test_tickets_waiting_together_share_a_call_up_to_its_size(stores, clock):
    store, stage_two, _ = await stores.start(records_per_call=4, dispatch_wait_s=0.05)
    tickets = [issue(clock) for _ in range(6)]
    await store.submit_many([submission(t) for t in tickets])
    views = [await ended(store, t) for t in tickets]
    assert [v.status for v in views] == ["completed"] * 6
    assert sorted(len(call.tickets) for call in stage_two.calls) == [2, 4]


# Stage two's faults


async def test_a_replica_lost_under_a_call_is_tried_again(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True), max_attempts=3)
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    first = await stage_two.next_call(1)
    first.lost = True
    release(first)
    release(await stage_two.next_call(2))
    view = await ended(store, ticket)
    assert view.status == "completed" and view.attempts == 2


async def test_a_ticket_whose_replicas_keep_dying_fails_after_its_attempts(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True), max_attempts=2)
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    for count in (1, 2):
        call = await stage_two.next_call(count)
        call.lost = True
        release(call)
    view = await ended(store, ticket)
    assert view.status == "failed" and view.error.error == "replica_lost"
    assert len(stage_two.calls) == 2


async def test_a_call_that_raises_fails_its_tickets_and_is_not_tried_again(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    call = await stage_two.next_call()
    call.failure = RuntimeError("the model broke")
    release(call)
    view = await ended(store, ticket)
    assert view.status == "failed" and view.error.error == "stage_two_error"
    assert "the model broke" not in view.error.message  # causes go to the log
    assert len(stage_two.calls) == 1


async def test_a_call_that_never_returns_times_out(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True), timeout_s=0.3)
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    call = await stage_two.next_call()
    call.accept.set()  # taken, and never answered
    view = await ended(store, ticket)
    assert view.status == "failed" and view.error.error == "timed_out"
    assert call.canceled


async def test_each_records_outcome_ends_its_own_ticket(stores, clock):
    failed = ErrorBody(error="model_failed", message="the model failed on this record")
    store, _, _ = await stores.start(ScriptedStageTwo(answer=answer_errors(failed)))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    view = await ended(store, ticket)
    assert view.status == "failed" and view.error == failed


# Deadlines


async def test_a_deadline_passing_in_the_queue_expires_the_ticket_unrun(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket, deadline=clock() + 0.2)])
    view = await ended(store, ticket)  # no replica ever took the call
    assert view.status == "expired" and view.error.error == "deadline_passed"
    assert stage_two.calls[0].canceled


async def test_a_deadline_stage_two_reports_expires_only_its_ticket(stores, clock):
    passed = ticket_errors.deadline_passed()
    store, _, _ = await stores.start(ScriptedStageTwo(answer=answer_errors(passed)))
    ticket = issue(clock)
    await store.submit_many([submission(ticket, deadline=clock() + 60)])
    assert (await ended(store, ticket)).status == "expired"


# Cancels


async def test_a_canceled_ticket_withdraws_its_call(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    call = await stage_two.next_call()
    view = await store.cancel(ticket)
    assert view.status == "canceled" and view.error.error == "canceled"
    await until(lambda: call.canceled)  # no one is left waiting for its call


async def test_a_cancel_racing_a_finish_gets_one_end_that_never_changes(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    release(await stage_two.next_call())
    canceled, finished = await asyncio.gather(store.cancel(ticket), ended(store, ticket))
    assert canceled.status == finished.status
    for _ in range(3):
        assert (await store.view(ticket)).status == finished.status
        await asyncio.sleep(0.02)


async def test_a_cancel_before_the_submission_arrives_drops_it(stores, clock):
    store, stage_two, _ = await stores.start()
    ticket = issue(clock)
    assert (await store.cancel(ticket)).status == "canceled"
    await store.submit_many([submission(ticket)])
    await asyncio.sleep(0.05)
    assert stage_two.calls == []


async def test_a_cancel_of_a_peers_ticket_reaches_it_through_the_journal(durable_stores, clock):
    holder, stage_two, _ = await durable_stores.start(ScriptedStageTwo(hold=True), owner="a")
    peer, _, _ = await durable_stores.start(owner="b")
    ticket = issue(clock)
    await holder.submit_many([submission(ticket)])
    call = await stage_two.next_call()
    view = await peer.cancel(ticket)
    assert view.status == "canceled"
    await until(lambda: call.canceled)
    # The holder reads it ended once its own write of the end is acknowledged.
    assert (await ended(holder, ticket)).status == "canceled"


# Keeping results


async def test_a_result_past_its_ttl_reads_released_and_is_freed(stores, clock):
    store, _, _ = await stores.start(result_ttl_s=10)
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    assert (await ended(store, ticket)).status == "completed"
    clock.advance(11)
    view = await store.view(ticket)
    assert view.status == "expired" and view.error.error == "result_expired"
    store.release_expired()
    assert store.held == 0
    assert (await store.view(ticket)).status == "expired"


async def test_a_full_store_releases_its_oldest_finished_tickets(stores, clock):
    store, _, _ = await stores.start(max_held=2, max_unfinished=2)
    tickets = [issue(clock) for _ in range(3)]
    for ticket in tickets:
        await store.submit_many([submission(ticket)])
        await ended(store, ticket)
    assert store.held == 2
    # Released from memory; a durable journal still holds its end until its TTL.
    oldest = "completed" if stores.journal_args.durable else "expired"
    assert (await store.view(tickets[0])).status == oldest
    assert (await store.view(tickets[2])).status == "completed"


async def test_a_wait_answers_once_a_ticket_ends_or_its_time_is_up(stores, clock):
    store, stage_two, _ = await stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    assert (await store.wait_ended([ticket], wait_s=0.05)).ended == []
    waiting = asyncio.ensure_future(store.wait_ended([ticket], wait_s=5))
    release(await stage_two.next_call())
    reply = await asyncio.wait_for(waiting, 2)
    assert [v.status for v in reply.ended] == ["completed"]


# The journal's faults


async def test_a_submission_the_journal_did_not_take_is_refused_then_taken_again(
    durable_stores, clock
):
    store, stage_two, journal = await durable_stores.start()
    ticket = issue(clock)
    journal.writes_fail = True
    with pytest.raises(JournalUnavailable):
        await store.submit_many([submission(ticket)])
    assert store.held == 0  # forgotten: its sender sends it again
    journal.writes_fail = False
    await store.submit_many([submission(ticket)])
    assert (await ended(store, ticket)).status == "completed"
    assert stage_two.tickets_run == [ticket]


async def test_an_end_reads_unfinished_until_the_journal_holds_it(durable_stores, clock):
    store, stage_two, journal = await durable_stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    journal.writes_fail = True
    release(await stage_two.next_call())
    await asyncio.sleep(0.05)
    # Ended here, but were this replica to die now another would run it again.
    assert (await store.view(ticket)).status in ("pending", "running")
    assert (await store.wait_ended([ticket], wait_s=0.05)).ended == []
    journal.writes_fail = False
    assert (await ended(store, ticket)).status == "completed"


async def test_a_ticket_the_journal_says_is_anothers_is_given_up(durable_stores, clock):
    store, stage_two, journal = await durable_stores.start(ScriptedStageTwo(hold=True))
    ticket = issue(clock)
    await store.submit_many([submission(ticket)])
    call = await stage_two.next_call()
    journal.refuse.add(ticket)
    call.accept.set()  # its start is written, and refused
    await until(lambda: store.held == 0)
    await until(lambda: call.canceled)
    assert store.unfinished == 0


async def test_a_replica_that_lost_its_lease_loses_its_tickets_to_a_peer(durable_stores, clock):
    first, first_stage_two, first_journal = await durable_stores.start(
        ScriptedStageTwo(hold=True), owner="a"
    )
    ticket = issue(clock)
    await first.submit_many([submission(ticket)])
    await first_stage_two.next_call()
    first_journal.leases_fail = True
    second, second_stage_two, _ = await durable_stores.start(owner="b")
    view = await ended(second, ticket, timeout_s=10 * LEASE_S + 5)
    assert view.status == "completed"
    assert second_stage_two.tickets_run == [ticket]
    # The first replica's next write of the ticket is refused: it gives the ticket up.
    first_stage_two.calls[0].accept.set()
    await until(lambda: first.held == 0)
    assert (await first.view(ticket)).status == "completed"


async def test_a_replica_dying_mid_call_has_its_tickets_run_by_the_next(durable_stores, clock):
    first, stage_two, _ = await durable_stores.start(ScriptedStageTwo(hold=True), owner="a")
    ticket = issue(clock)
    await first.submit_many([submission(ticket)])
    (await stage_two.next_call()).accept.set()  # running when its replica dies
    await asyncio.sleep(0.05)  # its start is written
    await first.stop()  # the replica dies: nothing more of it runs or is written
    second, second_stage_two, _ = await durable_stores.start(owner="b")
    view = await ended(second, ticket, timeout_s=10 * LEASE_S + 5)
    assert view.status == "completed" and view.attempts == 2
    assert second_stage_two.tickets_run == [ticket]
