"""opsconsole: an operations console and durable job queue for the terminal."""

__version__ = "0.1.0"
