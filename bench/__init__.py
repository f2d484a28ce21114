"""
sockserve's benchmark suite: sockserve against its peers, in the same run.

Run it with C{./dev bench} (or C{.venv/bin/python -m bench}); the Benchmarks
page of the documentation (docs/explanation/benchmarks.rst) says what it
measures and how.
"""
