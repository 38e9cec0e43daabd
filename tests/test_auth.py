"""API-key authentication: the ``guarded`` app takes its key from its replicas' environment."""

import pytest
from conftest import API_KEY

from multistage.http.auth import AuthArgs, load_tenants
from multistage.tickets.ids import DEFAULT_TENANT
from multistage_client import Client

GUARDED = "/guarded"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/predict"),
        ("POST", "/v1/predict/stream"),
        ("POST", "/v1/predict/batch"),
        ("GET", "/v1/models"),
        ("GET", "/v1/predictions/anything"),
        ("GET", "/v1/predictions/anything/events"),
        ("DELETE", "/v1/predictions/anything"),
    ],
)
def test_every_v1_endpoint_needs_the_key(http, example, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": API_KEY[:-1]}):
        response = http.request(method, f"{GUARDED}{path}", json=example, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_key_opens_the_api_and_health_stays_open(http, serve_url, example):
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    posted = http.post(f"{GUARDED}/v1/predict", json=example, headers=bearer)
    assert posted.status_code == 200
    ticket_url = posted.json()["stage_two"]["url"]
    fetched = http.get(ticket_url, params={"wait": 20}, headers={"X-API-Key": API_KEY})
    assert fetched.json()["status"] == "completed"
    assert http.get(f"{GUARDED}/healthz").status_code == 200
    # The other apps have no key configured: open.
    assert http.get("/v1/models").status_code == 200

    with Client(f"{serve_url}{GUARDED}", api_key=API_KEY) as client:
        assert client.predict(example).result(timeout=20).model.name == "defect-cnn"


def test_key_from_a_file_wins_and_an_empty_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_KEY", "from-env")
    from_env = load_tenants(AuthArgs(api_key_env="SOME_KEY"))
    assert from_env.tenant_of(b"from-env") == DEFAULT_TENANT  # one key: one tenant
    assert load_tenants(AuthArgs(api_key_env="UNSET_VARIABLE_FOR_THIS_TEST")) is None
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    from_file = load_tenants(AuthArgs(api_key_env="SOME_KEY", api_key_file=secret))
    assert (from_file.tenant_of(b"from-file"), from_file.tenant_of(b"from-env")) == (
        DEFAULT_TENANT,
        None,
    )
    secret.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_tenants(AuthArgs(api_key_file=secret))
