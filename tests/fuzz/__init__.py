"""archcheck's fuzz harness: generated specs, mutated samples and hostile files through every command.

By hand: ``python -m tests.fuzz --cases 20000`` (see docs/fuzzing.md); in the suite: tests/test_fuzz.py.
"""
