"""
sockserve's benchmark suite: sockserve against its peers, in the same run.

Run it with C{./dev bench} (or C{.venv/bin/python -m bench}); see
C{bench/README-section.rst}.
"""
