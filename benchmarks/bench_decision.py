"""Cost of deciding one new alert of an object that already has N alerts: the decision core against
round 1's way (sort the whole history again and re-run the policy over it), measured in one run.

    python benchmarks/bench_decision.py                       # N = 10, 100, 1000, 10000
    python benchmarks/bench_decision.py --sizes 10 1000 --repeats 2000

For each N, an object's N earlier alerts are decided first (not timed); then the time of one more
decision is the median over ``--repeats`` new alerts. The core keeps a small state per object, so
its cost should not grow with N; the round-1 way is O(N log N) per alert, O(N^2 log N) per night.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

from brightscan.policy import ScoredAlert, create_policy, decide, replay, sort_history


def _alerts(n: int, rng: np.random.Generator) -> list[ScoredAlert]:
    jds = np.sort(2460000.5 + rng.uniform(0, 365, n))
    return [ScoredAlert(candid=i, jd=float(jd), score=float(rng.uniform(0, 0.4)), magpsf=float(rng.uniform(17, 20)),
                        peakmag_so_far=None, age=None, ndethist=None) for i, jd in enumerate(jds)]


def _round1(policy, known: list[ScoredAlert], alert: ScoredAlert) -> bool:
    """What the service did per new alert before the core: re-sort everything, re-run the policy."""
    history = sort_history([*known, alert])
    return policy.passes(history)


def _median_us(fn, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=500)
    parser.add_argument("--policy", default="gt2")
    args = parser.parse_args()
    policy = create_policy(args.policy)
    rng = np.random.default_rng(0)
    print(f"python {platform.python_version()} on {platform.processor() or platform.machine()}; policy {args.policy}")
    print(f"{'N earlier':>10} {'core us/alert':>14} {'round-1 us/alert':>17} {'round-1 / core':>15}")
    for n in args.sizes:
        known = _alerts(n, rng)
        state = replay(policy, known)
        last = known[-1].jd
        new = [ScoredAlert(candid=10**9 + i, jd=last + 1e-3 * (i + 1), score=0.1, magpsf=19.0)
               for i in range(args.repeats)]
        core = _median_us(lambda a: decide(policy, state, a), new)
        old = _median_us(lambda a: _round1(policy, known, a), new[: max(20, args.repeats // max(1, n // 100))])
        print(f"{n:>10} {core:>14.2f} {old:>17.1f} {old / core:>14.0f}x")


if __name__ == "__main__":
    main()
