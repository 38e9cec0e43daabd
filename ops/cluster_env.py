"""The environment a local Ray cluster's processes need to serve this application.

``configs/fast-path.env`` holds what every cluster needs (Serve's HAProxy ingress and
its settings). A local cluster adds, per run, a folder of its own for HAProxy's files (so
its HAProxy processes can be found and stopped, ``ops/haproxy.py``) and the wrapper that
binds HAProxy's stats and metrics listeners where its HTTP frontend listens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ops import haproxy

FAST_PATH_ENV = Path(__file__).resolve().parent.parent / "configs" / "fast-path.env"
Proxy = Literal["haproxy", "python"]
PROXIES: tuple[Proxy, ...] = ("haproxy", "python")
# A one-machine cluster on loopback: Ray resolves "127.0.0.1" given as the node's address to
# the machine's outward address, unless told that this node forms no cluster with others
# (the variable's name is Ray's, for laptops). Then its GCS, raylet, workers, agents and
# metrics exporter bind 127.0.0.1 (Ray 2.60: ``ray._private.services.get_node_ip_address``).
# It must be in the environment of the process that starts the cluster before Ray is
# imported there, so it is for `make run` and `ray start`, not a test's in-process cluster.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def fast_path_env() -> dict[str, str]:
    """``configs/fast-path.env``'s variables (``NAME=value`` lines; ``#`` comments)."""
    env = {}
    for line in FAST_PATH_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def local_cluster_env(
    proxy: Proxy,
    run_dir: Path,
    stats_port: int | None = None,
    metrics_port: int | None = None,
) -> dict[str, str]:
    """Variables to set before starting a local cluster behind ``proxy``.

    ``run_dir`` holds this cluster's HAProxy files; ``stats_port`` and ``metrics_port``
    replace HAProxy's defaults (8404, 9101), e.g. to run beside another cluster.
    """
    if proxy == "python":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}  # whatever the caller's environment says
    run_dir.mkdir(parents=True, exist_ok=True)
    env = fast_path_env() | {
        # A stopping ingress replica keeps serving this long so that HAProxy can stop
        # routing to it (Ray's default, 30 s, is for load balancers outside the cluster).
        # HAProxy on this one node reloads within a fraction of a second of the change;
        # at 30 s, stopping a laptop's service took over half a minute.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(run_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(run_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(run_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(run_dir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(run_dir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(haproxy.BIND_AS_CONFIGURED),
        "MULTISTAGE_HAPROXY_BINARY": haproxy.real_binary(),
    }
    if stats_port is not None:
        env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(stats_port)
    if metrics_port is not None:
        env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(metrics_port)
    return env


def main() -> None:
    """``python -m ops.cluster_env RUN_DIR [PROXY]``: ``export`` lines for a shell that
    starts a one-machine cluster (on loopback)."""
    import shlex
    import sys

    run_dir, proxy = Path(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "haproxy")
    for name, value in (local_cluster_env(proxy, run_dir) | LOOPBACK_ONLY).items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
