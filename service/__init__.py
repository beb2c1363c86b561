"""Media-intelligence stream service: a Faust application on Apache Kafka and Redis."""

__version__ = "0.1.0"
