"""``make run``: ``serve run <config>`` on a local cluster with the fast path's environment.

    python -m ops.serve_local configs/local.yaml [--proxy python]

Sets ``configs/fast-path.env`` (Serve's HAProxy ingress; ``--proxy python`` leaves it out
for Serve's Python proxy) and binds Ray's own ports to loopback, runs ``serve run``, and
once it has exited stops any HAProxy process its cluster left behind. Ctrl-C reaches
``serve run`` from the terminal; SIGTERM to this process is passed on to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ops import haproxy
from ops.cluster_env import LOOPBACK_ONLY, PROXIES, local_cluster_env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--proxy", choices=PROXIES, default="haproxy")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="ms-hap-"))
    env = os.environ | local_cluster_env(args.proxy, run_dir) | LOOPBACK_ONLY
    serve = Path(sys.executable).with_name("serve")
    # A cluster of its own ("local"): by default serve run joins whatever cluster Ray last
    # recorded on this machine, even one that has stopped.
    command = [str(serve), "run", "--address", "local", str(args.config)]
    child = subprocess.Popen(command, env=env)
    # The terminal sends Ctrl-C to serve run itself: wait for it to stop its cluster.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        code = child.wait()
    finally:
        if left := haproxy.stop(run_dir):
            print(f"stopped {left} HAProxy process(es) the cluster left running", file=sys.stderr)
        shutil.rmtree(run_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
