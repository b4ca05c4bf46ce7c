"""dtd: daemontools, rebuilt in Python as a modern service supervisor."""

__version__ = "0.1.0"
