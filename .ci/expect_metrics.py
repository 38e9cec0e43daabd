"""Wait until a node's metrics endpoint has counted every request, then print the
application's own metrics (histogram buckets and Ray's bookkeeping tags left out).

    python .ci/expect_metrics.py URL REQUESTS [--timeout-s 60]

Each replica reports on its own clock (Ray's default: every 10 s), so one replica's
series can trail another's: checking that the series merely exist read too early.
"""

from __future__ import annotations

import argparse
import sys
import time

from multistage.metrics.scrape import scrape, total

# Series that count each request once, with the labels that pick the right samples.
COUNTED = {
    "ray_multistage_stage_one_latency_ms_count": {},
    "ray_multistage_tickets_finished_total": {"status": "completed"},
    "ray_multistage_stage_two_compared_total": {},
}
NOISE = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "replica"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("requests", type=int)
    parser.add_argument("--timeout-s", type=float, default=60)
    args = parser.parse_args()

    deadline = time.monotonic() + args.timeout_s
    while True:
        samples = scrape(args.url)
        counts = {name: total(samples, name, **labels) for name, labels in COUNTED.items()}
        if all(count >= args.requests for count in counts.values()):
            break
        if time.monotonic() > deadline:
            sys.exit(f"after {args.timeout_s:g} s, not every request was counted: {counts}")
        time.sleep(1)
    for (name, labels), value in samples.items():
        if name.startswith("ray_multistage_") and not name.endswith("_bucket"):
            tags = ",".join(
                f"{k}={v}" for k, v in sorted(labels) if k not in NOISE and not k.startswith("otel")
            )
            print(f"{name}{{{tags}}} {value:g}")


if __name__ == "__main__":
    main()
