"""
sockserve: echo, one-shot reply and chat line servers on Twisted.

The servers are run by ``twistd sockserve`` (see L{sockserve.tap}); the client is
``sockserve-client`` (see L{sockserve.client}).
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
