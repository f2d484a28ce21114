"""
Small servers doing the same work as sockserve, to measure it against.

Each is run as C{python -m bench.peers.NAME --mode MODE --port 0} and prints
C{<name> <mode> server listening on 127.0.0.1:PORT} once it listens.
"""
