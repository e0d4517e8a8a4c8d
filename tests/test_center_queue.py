"""The infusion center's chair queue against queueing theory and against Ciw.

``engines.center.mmc_waits`` runs the center's chair queue alone (``CenterSim`` with its
``simpy.PriorityResource``: always open, one priority class, so first come first served)
with Poisson arrivals and exponential chair times: an M/M/c queue, whose stationary waits
are known exactly (Erlang C): P(wait > 0) = C(c, a), mean wait C(c, a) / (c mu - lambda)
and, first come first served, P(wait > x) = C(c, a) exp(-(c mu - lambda) x).

Statistics: each replication starts empty, its first ``WARM_UP`` customers are dropped,
and the mean over the rest is one batch. Waits within a run are strongly autocorrelated
(an iid standard error would be far too small), but replications are independent, so
the standard error is the spread of the replication means over sqrt(R) (batch means over
replications). A check fails only beyond ``T_LIMIT`` standard errors: with R = 16 that is
a two-sided tail of about 1e-4 per check under the t distribution, so the tests pass for
almost any seed, while a real error (a server too many or too few, chair time in the
wrong unit, the closing process holding chairs) moves the means by many standard errors.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest
from scipy import stats

from simulator.engines.center import mmc_waits

SEED = 20260401
REPLICATIONS = 16
CUSTOMERS = 3000  # per replication
WARM_UP = 500  # customers dropped from the start of each replication (it starts empty)
T_LIMIT = float(stats.t.ppf(1 - 0.5e-4, REPLICATIONS - 1))  # two-sided 1e-4

# (chairs, arrivals per day, mean chair time in days): utilisation 0.5, 0.75 and 0.85
QUEUES = [(1, 0.5, 1.0), (2, 1.5, 1.0), (3, 3.4, 0.75)]


def erlang_c(chairs: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load lambda/mu."""
    below = sum(load**k / math.factorial(k) for k in range(chairs))
    top = load**chairs / math.factorial(chairs) * chairs / (chairs - load)
    return top / (below + top)


def theory(chairs: int, rate: float, service_mean: float) -> dict[str, float]:
    mu = 1.0 / service_mean
    c_prob = erlang_c(chairs, rate * service_mean)
    decay = chairs * mu - rate
    mean = c_prob / decay
    return {"mean": mean, "waits": c_prob, "over_mean": c_prob * math.exp(-decay * mean)}


def batch_means(waits_by_replication: list[np.ndarray], over: float) -> dict[str, np.ndarray]:
    """Per replication: mean wait, share who waited, share who waited longer than ``over``."""
    return {
        "mean": np.array([w.mean() for w in waits_by_replication]),
        "waits": np.array([(w > 0).mean() for w in waits_by_replication]),
        "over_mean": np.array([(w > over).mean() for w in waits_by_replication]),
    }


def standard_error(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(x.size))


@functools.cache
def ours(chairs: int, rate: float, service_mean: float) -> list[np.ndarray]:
    """Our waits after the warm-up, one array per replication (computed once per queue)."""
    return [
        mmc_waits(chairs, rate, service_mean, CUSTOMERS, SEED, replication=r)[WARM_UP:]
        for r in range(REPLICATIONS)
    ]


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: f"c{q[0]}_rho{q[1] * q[2] / q[0]:.2f}")
def test_mmc_waits_agree_with_erlang_c(queue):
    chairs, rate, service_mean = queue
    expected = theory(chairs, rate, service_mean)
    runs = ours(chairs, rate, service_mean)
    assert all(np.isfinite(w).all() and (w >= 0).all() for w in runs)
    got = batch_means(runs, expected["mean"])
    for name, value in expected.items():
        x = got[name]
        se = standard_error(x)
        assert se > 0
        z = (x.mean() - value) / se
        assert abs(z) < T_LIMIT, (
            f"{name}: simulated {x.mean():.4f} (se {se:.4f}) vs Erlang C {value:.4f}, "
            f"{z:.1f} standard errors apart"
        )


def ciw_waits(chairs: int, rate: float, service_mean: float, seed: int) -> np.ndarray:
    """Waits of one Ciw run of the same M/M/c queue, same length and warm-up as ours:
    customers arriving after the warm-up and before the end of our run's arrivals (Ciw
    writes a record when a customer leaves, so the run goes on long enough for every
    counted customer to have left)."""
    import ciw

    net = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate)],
        service_distributions=[ciw.dists.Exponential(rate=1.0 / service_mean)],
        number_of_servers=[chairs],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(net)
    start, end = WARM_UP / rate, CUSTOMERS / rate
    sim.simulate_until_max_time(end + 200.0 * service_mean)
    recs = [r for r in sim.get_all_records() if start <= r.arrival_date < end]
    return np.array([r.waiting_time for r in sorted(recs, key=lambda r: r.arrival_date)])


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: f"c{q[0]}_rho{q[1] * q[2] / q[0]:.2f}")
def test_ciw_gives_the_same_mean_wait_within_the_combined_monte_carlo_error(queue):
    pytest.importorskip("ciw")
    chairs, rate, service_mean = queue
    state = random.getstate()  # ciw.seed seeds the random module too
    try:
        theirs = [ciw_waits(chairs, rate, service_mean, SEED + r) for r in range(REPLICATIONS)]
    finally:
        random.setstate(state)
    a = np.array([w.mean() for w in ours(chairs, rate, service_mean)])
    b = np.array([w.mean() for w in theirs])
    assert min(w.size for w in theirs) > 0.8 * (CUSTOMERS - WARM_UP)
    se = math.hypot(standard_error(a), standard_error(b))
    z = (a.mean() - b.mean()) / se
    assert abs(z) < T_LIMIT, (
        f"mean wait {a.mean():.4f} (ours) vs {b.mean():.4f} (Ciw), {z:.1f} combined"
        " standard errors apart"
    )
