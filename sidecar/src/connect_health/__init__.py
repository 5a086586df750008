"""connect-health: a health sidecar for Kafka Connect."""

__version__ = "0.1.0"
