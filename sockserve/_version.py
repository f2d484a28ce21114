"""
The version of sockserve (kept apart, so that any module may import it).
"""

__version__ = "1.0.0"
