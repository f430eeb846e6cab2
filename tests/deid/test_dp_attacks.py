"""Attacks on noisy counts: reconstruction and differencing do no better than guessing."""

from __future__ import annotations

import numpy as np

from deid.dp import add_noise


def test_dinur_nissim_reconstruction_within_a_budget_is_no_better_than_guessing() -> None:
    # 60 people, each with a secret bit; the attacker asks 240 random subset counts and
    # solves for the bits by least squares. With a total budget of ε = 1 split across the
    # queries (basic composition), each answer carries discrete Laplace noise of scale 240.
    rng = np.random.default_rng(7)
    people, queries, total_epsilon = 60, 240, 1.0
    secret = rng.integers(0, 2, people)
    subsets = rng.integers(0, 2, (queries, people))
    exact = subsets @ secret
    noisy = np.array(add_noise(exact.tolist(), 1, total_epsilon / queries))
    guess = (np.linalg.lstsq(subsets, noisy, rcond=None)[0] > 0.5).astype(int)
    accuracy = float((guess == secret).mean())
    baseline = max(secret.mean(), 1 - secret.mean())
    assert accuracy <= baseline + 0.2, (
        f"reconstructed {accuracy:.0%} of bits against a baseline of {baseline:.0%}"
    )
    # Without noise the same attack recovers every bit, so the test can tell the difference.
    clean = (np.linalg.lstsq(subsets, exact, rcond=None)[0] > 0.5).astype(int)
    assert (clean == secret).all()


def test_differencing_two_counts_does_not_reveal_one_person() -> None:
    # "Everyone" minus "everyone but the target": is the target in the data? A membership
    # guess from the difference succeeds with probability at most e^ε / (1 + e^ε).
    epsilon, trials = 0.5, 4000
    rng = np.random.default_rng(11)
    members = rng.integers(0, 2, trials)
    total = np.array(add_noise((1000 + members).tolist(), 1, epsilon))
    without = np.array(add_noise([1000] * trials, 1, epsilon))
    guessed = (total - without > 0.5).astype(int)
    success = float((guessed == members).mean())
    bound = np.exp(2 * epsilon) / (1 + np.exp(2 * epsilon))  # two ε-releases compose to 2ε
    assert success <= bound + 0.03, f"membership guessed {success:.1%}, bound {bound:.1%}"
