"""Stream handlers: decode a message, call the domain, write to Redis, emit events.

The handlers know nothing of Faust; `service.app` feeds them the messages its
agents consume, and gives them a way to produce.
"""
