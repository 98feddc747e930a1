"""Statistics for experiments: sample size before a test, and always-valid results during it.

Floats are fine here (these are probabilities, not money). No scipy: `statistics.NormalDist`
gives the normal quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_STD = NormalDist()


def sample_size_two_proportions(
    *, p1: float, p2: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Visitors per arm to detect p1 → p2 with a two-sided test (Fleiss, no continuity
    correction): n = [z₁₋α/₂·√(2·p̄·q̄) + z₁₋β·√(p1·q1 + p2·q2)]² / (p2 − p1)², rounded up."""
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError("p1 and p2 must be distinct proportions strictly between 0 and 1")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must be between 0 and 1")
    z_a = _STD.inv_cdf(1 - alpha / 2)
    z_b = _STD.inv_cdf(power)
    p_bar = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root**2 / (p2 - p1) ** 2)


@dataclass(frozen=True)
class SequentialResult:
    n_a: int
    n_b: int
    rate_a: float
    rate_b: float
    difference: float  # rate_b − rate_a
    lower: float  # always-valid (1 − α) confidence sequence for the difference
    upper: float
    likelihood_ratio: float  # mixture likelihood ratio Λ; reject when Λ ≥ 1/α
    p_value: float  # always-valid p-value at this look: min(1, 1/Λ)
    decided: bool


def msprt_two_proportions(
    *, conv_a: int, n_a: int, conv_b: int, n_b: int, alpha: float = 0.05, tau: float = 0.02
) -> SequentialResult:
    """Mixture sequential probability ratio test for a difference of two proportions
    (Johari, Pekelis & Walsh, "Always valid inference", 2017; normal approximation).

    θ = p_b − p_a is estimated by d with variance V; mixing over θ ~ N(0, τ²) gives
        Λ = √(V / (V + τ²)) · exp(τ² d² / (2 V (V + τ²))).
    Λ is a martingale under H₀ (θ = 0), so by Ville's inequality P(Λ ever ≥ 1/α) ≤ α: looking
    after every visitor is as valid as looking once. The matching confidence sequence is
        d ± √( V (V + τ²)/τ² · (2 ln(1/α) + ln((V + τ²)/V)) ).
    τ is the effect size we care about (the experiment's minimum detectable effect).
    Each look is computed from the running totals; rejecting at any look is valid.
    """
    if n_a <= 0 or n_b <= 0:
        return SequentialResult(n_a, n_b, 0.0, 0.0, 0.0, -1.0, 1.0, 1.0, 1.0, False)
    rate_a, rate_b = conv_a / n_a, conv_b / n_b
    d = rate_b - rate_a
    # Under H₀ the arms share one rate: the pooled estimate is the stable choice for V and
    # keeps Λ honest at small counts (an arm at 0 % would otherwise have zero variance).
    pooled = (conv_a + conv_b) / (n_a + n_b)
    v = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if v <= 0:
        return SequentialResult(n_a, n_b, rate_a, rate_b, d, -1.0, 1.0, 1.0, 1.0, False)
    t2 = tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
    lr = math.exp(min(log_lr, 700.0))
    half = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))
    return SequentialResult(
        n_a, n_b, rate_a, rate_b, d, d - half, d + half, lr, min(1.0, 1 / lr), lr >= 1 / alpha
    )


def naive_z_test_rejects(
    *, conv_a: int, n_a: int, conv_b: int, n_b: int, alpha: float = 0.05
) -> bool:
    """The fixed-horizon two-proportion z-test. Valid when looked at once; used in the A/A
    simulation to show how repeated peeking inflates its false positives."""
    if n_a <= 0 or n_b <= 0:
        return False
    pooled = (conv_a + conv_b) / (n_a + n_b)
    v = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if v <= 0:
        return False
    z = (conv_b / n_b - conv_a / n_a) / math.sqrt(v)
    return abs(z) >= _STD.inv_cdf(1 - alpha / 2)


def verdict(*, result: SequentialResult, planned_per_arm: int, arm_a: str, arm_b: str) -> str:
    """The plain-language status the dashboard shows."""
    if result.decided:
        winner = arm_b if result.difference > 0 else arm_a
        return f"winner: {winner}"
    if min(result.n_a, result.n_b) < planned_per_arm:
        return "underpowered"
    return "undecided"
