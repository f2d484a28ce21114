"""
The IRC conformance suite: irctest's server tests run against ngIRCd and
sockserve's IRC front end (C{./dev conformance}; see C{__main__}).
"""
