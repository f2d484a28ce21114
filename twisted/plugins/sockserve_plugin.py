"""
The twistd plugin for sockserve.

It names the module holding the real code as a string, so scanning plugins (which
every twistd command does) imports nothing heavy.
"""

from twisted.application.service import ServiceMaker

sockserve = ServiceMaker(
    "sockserve",
    "sockserve.tap",
    "Echo, one-shot reply and chat line servers (the socket tutorial's servers).",
    "sockserve",
)
