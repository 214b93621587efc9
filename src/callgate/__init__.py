"""callgate: a self-hosted runtime for AI phone agents written as SignalWire SWML documents."""

__version__ = "0.1.0"
