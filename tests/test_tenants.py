"""Tenants: each API key names one; a tenant's tickets are its own; a key file is read
again when it changes. The file's rules without a cluster, then the live guarded app."""

import asyncio
import json
import os
import time

import httpx
import pytest
from conftest import API_KEY, GUARDED_LIMITS, OTHER_KEY, write_tenants
from websockets.sync.client import connect

from multistage.http.tenants import TenantsFromFile
from multistage.metrics.exported import ADMISSION_REJECTIONS
from multistage.metrics.scrape import scrape, total
from multistage_client import paths

GUARDED = "/guarded"
ACME = {"Authorization": f"Bearer {API_KEY}"}
GLOBEX = {"Authorization": f"Bearer {OTHER_KEY}"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rewrite(path, keys: dict[str, str], limits: dict[str, int] | None = None) -> None:
    """Write the tenants file anew, with a modification time that surely differs."""
    write_tenants(path, keys, limits)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_key_names_its_tenant_and_a_changed_file_is_read_again_within_a_second(tmp_path):
    path, clock = tmp_path / "tenants.json", Clock()
    write_tenants(path, {"acme": "key-a", "globex": "key-g"})
    tenants = TenantsFromFile(path, clock=clock)
    assert (tenants.tenant_of(b"key-a"), tenants.tenant_of(b"key-g")) == ("acme", "globex")
    assert tenants.tenant_of(b"key-x") is None and tenants.tenant_of(None) is None

    _rewrite(path, {"acme": "key-a2", "globex": "key-g"})  # acme's key rotated
    assert tenants.tenant_of(b"key-a") == "acme"  # not checked again yet
    clock.now = 1.0
    assert tenants.tenant_of(b"key-a") is None
    assert tenants.tenant_of(b"key-a2") == "acme"


def test_a_broken_change_keeps_the_keys_in_force(tmp_path):
    path, clock = tmp_path / "tenants.json", Clock()
    write_tenants(path, {"acme": "key-a"})
    tenants = TenantsFromFile(path, clock=clock)
    path.write_text('{"tenants": {"acme": {"key_sha256": "not a hash"}}}')
    clock.now = 1.0
    assert tenants.tenant_of(b"key-a") == "acme"


def test_a_file_that_is_not_a_tenants_file_is_refused_at_start(tmp_path):
    path = tmp_path / "tenants.json"
    path.write_text('{"tenants": {}}')
    with pytest.raises(ValueError, match="not a tenants file"):
        TenantsFromFile(path)


def _never_issued(http, headers: dict) -> dict:
    return http.get(f"{GUARDED}/v1/predictions/{'A' * 59}", headers=headers).json()


def test_another_tenants_ticket_is_exactly_one_never_issued(http, example):
    posted = http.post(f"{GUARDED}/v1/predict", json=example, headers=ACME).json()
    ticket = posted["ticket"]
    url = f"{GUARDED}{paths.ticket_path(ticket)}"
    assert http.get(url, headers=ACME, params={"wait": 20}).status_code == 200

    refusals = [
        http.get(url, headers=GLOBEX),
        http.get(url, headers=GLOBEX, params={"wait": 1}),
        http.get(f"{url}/events", headers=GLOBEX),
        http.delete(url, headers=GLOBEX),
    ]
    for refused in refusals:
        assert refused.status_code == 404, refused.text
        body = refused.json()
        assert body["error"] == "unknown_ticket"
        assert body["message"] == f"no ticket {ticket!r} was ever issued"
    assert _never_issued(http, GLOBEX)["error"] == "unknown_ticket"
    # Untouched by the other tenant's cancel: still the owner's, and completed.
    assert http.get(url, headers=ACME).json()["status"] == "completed"


def test_another_tenant_cannot_follow_a_ticket_on_a_stream_session(http, serve_url, example):
    ticket = http.post(f"{GUARDED}/v1/predict", json=example, headers=ACME).json()["ticket"]
    url = f"{serve_url.replace('http', 'ws', 1)}{GUARDED}{paths.STREAMS}"
    with connect(url, additional_headers=GLOBEX) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(json.dumps({"type": "follow", "seq": 1, "ticket": ticket}))
        error = json.loads(ws.recv(timeout=10))
    assert (error["type"], error["error"], error["seq"]) == ("error", "unknown_ticket", 1)


def test_a_key_is_rotated_without_a_restart(http, example, tenants_file):
    rotated = "rotated-key-" + "z" * 24
    try:
        _rewrite(tenants_file, {"acme": API_KEY, "globex": rotated}, GUARDED_LIMITS)
        _until_globex_old_key_gets(http, 401, "the old key still opens the API")
        new = {"Authorization": f"Bearer {rotated}"}
        assert http.post(f"{GUARDED}/v1/predict", json=example, headers=new).status_code == 200
    finally:
        _rewrite(tenants_file, {"acme": API_KEY, "globex": OTHER_KEY}, GUARDED_LIMITS)
        _until_globex_old_key_gets(http, 200, "the restored key was never taken back")


def _until_globex_old_key_gets(http, status: int, failure: str) -> None:
    """Until the replicas have read the tenants file again (within about a second)."""
    deadline = time.monotonic() + 10
    while http.get(f"{GUARDED}/v1/models", headers=GLOBEX).status_code != status:
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def _bursts(serve_url: str, example: dict, count: int) -> tuple[list[dict], list[dict]]:
    """``count`` POSTs of each tenant, all in flight at once: acme's answers, globex's."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=serve_url, timeout=60) as client:
            sends = [
                client.post(f"{GUARDED}/v1/predict", json=example, headers=headers)
                for _ in range(count)
                for headers in (ACME, GLOBEX)
            ]
            return await asyncio.gather(*sends)

    answers = [response.json() for response in asyncio.run(burst())]
    return answers[0::2], answers[1::2]


def _ends(http, answers: list[dict], headers: dict) -> list[dict]:
    urls = [a["stage_two"]["url"] for a in answers if a["ticket"]]  # the prefix included
    return [http.get(url, headers=headers, params={"wait": 20}).json() for url in urls]


def _globex_refusals(metrics_url: str) -> float:
    name = f"ray_{ADMISSION_REJECTIONS}_total"
    return total(scrape(metrics_url), name, tenant="globex", reason="tenant_full")


def test_a_tenant_at_its_cap_leaves_stage_two_to_the_others(http, serve_url, metrics_url, example):
    counted_before = _globex_refusals(metrics_url)
    acme, globex = _bursts(serve_url, example, 30)
    acme_ends, globex_ends = _ends(http, acme, ACME), _ends(http, globex, GLOBEX)
    assert [v["status"] for v in acme_ends] == ["completed"] * 30  # no cap of its own
    refused = [v for v in globex_ends if v["status"] == "rejected"]
    assert refused, f"30 at once against a cap of {GUARDED_LIMITS['globex']}: none refused"
    assert {v["error"]["error"] for v in refused} == {"tenant_full"}
    assert {v["status"] for v in globex_ends} == {"completed", "rejected"}
    # Counted as globex's own: the metric's tenant label.
    deadline = time.monotonic() + 30
    while _globex_refusals(metrics_url) - counted_before < len(refused):
        assert time.monotonic() < deadline, "globex's rejections were not counted as its own"
        time.sleep(0.5)
