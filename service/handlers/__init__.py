"""Stream handlers: decode a message, call the domain, write to Redis, emit events.

The handlers know nothing of Faust: `service.streaming` hands them the records the
worker fetches, a partition batch at a time, and `service.app` gives them a way to
produce.
"""
