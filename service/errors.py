"""The service's own errors: one hierarchy; which layer raises each, and which catches it.

::

    ServiceError                      anything the service raises on purpose
    |-- TransientError                the infrastructure, not the message: wait and retry
    |   |-- DeadLetterUnavailable     the dead-letter topic did not take a dead letter
    |   `-- ConcurrentUpdateError     an asset kept changing under its handler
    |-- DecodeError                   a message that cannot become an event: dead letter
    |-- TopicError                    Kafka refused to create a topic the service needs
    |-- ConfigurationError            a setting names something the service cannot use
    |-- RedisRequirementError         Redis is configured in a way the service refuses
    `-- RequestError                  an HTTP request the API cannot answer as asked
        |-- BadRequest                a parameter or the body is not valid (400)
        |-- Forbidden                 the service is not configured to allow it (403)
        `-- NotFound                  nothing is known under the requested name (404)

Who raises what, and who catches it:

- `TransientError`: the handlers (`service/handlers/`). `DeadLetterUnavailable` comes from
  the dead-letter publisher (`service/handlers/emit.py`) when Kafka does not acknowledge a
  dead letter; `ConcurrentUpdateError` from the registry handler
  (`service/handlers/registry.py`) when its compare-and-set keeps failing. Failures of the
  client libraries (Redis unreachable, read-only, out of memory; Kafka unreachable) are
  not wrapped: `service.resilience.is_transient` is the one place that recognises them,
  and it answers True for every `TransientError` too. The batching consumer
  (`service/streaming/batching.py`) catches them: it pauses the partition and hands the
  same batch again after a back-off. The leader's timers (`service/app.py`) postpone to
  their next interval; the API answers 503.
- `DecodeError`: the pure decoder (`service/domain/decoding.py`), the performance
  handler (a future event, a counter that would overflow) and the suggestion engine
  (feedback naming an unknown suggestion, or another asset's). The input handlers
  (`service/handlers/sequential.py`, `service/handlers/performance.py`) catch it and send
  the message to the dead-letter topic with its `code` and `reason`.
- `TopicError`: `service/topics.py` (`ensure_topics`). A worker that meets it at start-up
  does not start (exit status 1, with the error); `service topics create` fails with it.
- `ConfigurationError`: the client builders (`service/kafka_client.py`,
  `service/store/client.py`) when a CA, certificate or key file cannot be loaded. Every
  command reports it and exits with status 2, as for settings that fail validation.
- `RedisRequirementError`: `service/store/requirements.py` when the Redis configuration
  is refused; the `service worker` command reports it and exits with status 2.
- `RequestError`: the API views (`service/api/views.py`). The middleware
  (`service/api/middleware.py`) is the one place that turns any exception a view raises
  into problem details (`service.api.problems.for_exception`): 400, 403 and 404 for these, 503
  for a transient failure, 500 for anything else.

This module imports nothing outside the standard library and `service.domain.enums`, so
that the pure domain (`service.domain`) can raise its errors without depending on faust,
redis, aiokafka or asyncio.
"""

from __future__ import annotations

from service.domain.enums import DeadLetterReason


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigurationError(ServiceError):
    """A setting that validated but names something unusable (a key its password cannot
    open, a file that is not a certificate); the message names the setting."""


class TransientError(ServiceError):
    """A failure of the infrastructure that clears up by itself: the same work is retried."""


class DeadLetterUnavailable(TransientError):
    """The dead-letter topic did not take a dead letter, so its message is not done.

    Not a property of the message: the caller keeps the partition where it is and
    tries again later, as for any other unavailable infrastructure.
    """


class ConcurrentUpdateError(TransientError):
    """The asset kept changing under us; the message is retried later."""


class DecodeError(ServiceError):
    """A message that cannot become an event; `reason` says what to fix."""

    def __init__(self, code: DeadLetterReason, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event_id = event_id


class TopicError(ServiceError):
    """Kafka refused to create a topic the service needs."""


class RedisRequirementError(ServiceError):
    """Redis is configured in a way the service refuses to run on."""


class RequestError(ServiceError):
    """An HTTP request the API cannot answer as asked; its text is the problem's detail."""


class BadRequest(RequestError):
    """A path or query parameter, or the request body, is not valid (400)."""


class Forbidden(RequestError):
    """The request is refused as the service is configured, whoever sends it (403)."""


class NotFound(RequestError):
    """Nothing is known under the name the request gave (404)."""
