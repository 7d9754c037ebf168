"""The fuzz harness (tests/fuzz) for a small fixed budget: generated specs, mutated samples and hostile
files through every command and format must keep the exit-code contract, always say why, stay within
the time limit and never leave a partial file. Run it for longer by hand: ``python -m tests.fuzz``."""

import random

from fuzz.cases import case
from fuzz.harness import run_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_no_input_breaks_the_contract(rng: random.Random):
    failures = run_case(case(rng))
    assert not failures, "\n\n".join(f"{f.kind}: archcheck {' '.join(f.command)}\n{f.detail}" for f in failures)
