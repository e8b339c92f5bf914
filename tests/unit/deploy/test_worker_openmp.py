"""The worker's OpenMP spin default (deploy/cli.py) and the operator's precedence over it."""

from __future__ import annotations

from latentedit.deploy.cli import WORKER_GOMP_SPINCOUNT, short_openmp_spin


def test_a_worker_without_openmp_settings_gets_the_short_spin() -> None:
    env = {"PATH": "/usr/bin"}
    short_openmp_spin(env)
    assert env == {"PATH": "/usr/bin", "GOMP_SPINCOUNT": WORKER_GOMP_SPINCOUNT}


def test_the_operators_spin_count_or_wait_policy_wins() -> None:
    spin = {"GOMP_SPINCOUNT": "300000"}
    short_openmp_spin(spin)
    assert spin == {"GOMP_SPINCOUNT": "300000"}
    policy = {"OMP_WAIT_POLICY": "ACTIVE"}
    short_openmp_spin(policy)
    assert policy == {"OMP_WAIT_POLICY": "ACTIVE"}  # a spin count would override the policy
