"""Under Serve's HAProxy ingress the service listens only where its config says.

``configs/local.yaml`` binds ``127.0.0.1``: HAProxy's HTTP frontend, its stats and
Prometheus listeners (``ops/haproxy-bind-as-configured``; Ray 2.60 writes them for all
interfaces) and the ingress replicas' own HTTP servers must all be on loopback; and under
``make run``, Ray's own ports too (``ops.cluster_env.LOOPBACK_ONLY``).
"""

import contextlib
import ipaddress
import subprocess

import httpx
import psutil
import pytest
import yaml
from conftest import ROOT, local_config
from support import wait_for_condition, wait_until_ended

from benchmarks.serve_process import serve_run
from ops import haproxy
from ops.ports import free_port

WRAPPER = ROOT / "ops" / "haproxy-bind-as-configured"
# The lines of HAProxy's config that Ray 2.60 writes for these listeners, trimmed.
RAY_CONFIG = """global
    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind {host}:8000
    acl healthcheck path -i /-/healthz
backend http-multistage
    server SERVE_REPLICA_x 127.0.0.1:30000 check
listen stats
  bind *:8404
  stats enable
"""


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in process.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_haproxy_and_the_ingress_listen_on_loopback_only(serve_url, haproxy_dir):
    # After a reload the old HAProxy may still be draining: check every one of them.
    processes = haproxy.processes(haproxy_dir)
    addresses = {address for process in processes for address in _listening(process)}
    assert len({port for _, port in addresses}) == 3, addresses  # HTTP, stats, metrics
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}

    # The replicas' own HTTP servers, as HAProxy's config names them (Ray's worker ports
    # listen on every interface: see docs/configuration.md). The session runs two ingress replicas
    # (one may still be replacing a replica an earlier test killed).
    wait_for_condition(lambda: len(_routed_ports(haproxy_dir)) == 2, timeout=60)
    routed = _routed_ports(haproxy_dir)
    # A replica Serve just started can be routed to a moment before its server listens.
    wait_for_condition(lambda: {port for _, port in _listening_on(routed)} == routed, timeout=60)
    assert _listening_on(routed) == {("127.0.0.1", port) for port in routed}


@pytest.mark.own_cluster
def test_make_run_binds_every_port_of_its_cluster_to_loopback(artifacts, example, tmp_path):
    port = free_port()
    config = local_config(artifacts, port)
    config["applications"][0]["args"]["journal"]["path"] = str(tmp_path / "journal.sqlite")
    config_file = tmp_path / "local.yaml"
    config_file.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    with serve_run(config_file, url) as process, httpx.Client(base_url=url, timeout=30) as http:
        # One ticket through every deployment: each worker's servers are up.
        stage_two = http.post("/v1/predict", json=example).json()["stage_two"]["url"]
        assert wait_until_ended(http, stage_two).json()["status"] == "completed"
        listening = _listening_by_name(psutil.Process(process.pid).children(recursive=True))
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet", "haproxy"} <= names, names
    assert len(listening) > 10, listening  # GCS, raylet, agents, workers, HAProxy...
    elsewhere = [(name, address) for name, address in listening if not _is_loopback(address[0])]
    # All but one server per replica: Serve's inter-deployment gRPC server, which Ray 2.60
    # binds to "[::]:0" whatever the node's address (serve/_private/replica.py).
    replicas = [name for name, _ in elsewhere if name.startswith("ray::ServeReplica:")]
    assert len(replicas) == len(elsewhere) == len(set(replicas)) == 3, elsewhere


def _listening_by_name(processes: list[psutil.Process]) -> set[tuple[str, tuple[str, int]]]:
    """(process name, address) of each listening socket; processes that ended are skipped."""
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found |= {(process.name(), address) for address in _listening(process)}
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def _listening_on(ports: set[int]) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }


def _routed_ports(haproxy_dir) -> set[int]:
    """The ports of the ``multistage`` ingress replicas HAProxy's config routes to."""
    (config,) = haproxy_dir.glob("*/haproxy.cfg")
    return {
        int(line.split()[2].rsplit(":", 1)[1])
        for line in config.read_text().splitlines()
        if line.strip().startswith("server SERVE_REPLICA_multistage-Ingress")
    }


@pytest.mark.parametrize(
    ("host", "stats", "metrics"),
    [("127.0.0.1", "127.0.0.1:8404", "127.0.0.1:9101"), ("*", "*:8404", ":9101")],
)
def test_the_wrapper_binds_stats_and_metrics_where_the_frontend_is(tmp_path, host, stats, metrics):
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG.format(host=host))
    binary = tmp_path / "haproxy"
    binary.write_text('#!/bin/sh\necho "$@"\n')
    binary.chmod(0o755)
    ran = subprocess.run(
        [WRAPPER, "-db", "-f", config, "-dR"],
        env={"MULTISTAGE_HAPROXY_BINARY": str(binary), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.split() == ["-db", "-f", str(config), "-dR"]  # HAProxy's own arguments
    binds = [line.split()[1] for line in config.read_text().splitlines() if "bind " in line]
    assert binds == [metrics, f"{host}:8000", stats]
