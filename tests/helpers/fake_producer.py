"""Stand-ins for the Kafka producer in worker tests without a broker."""

from __future__ import annotations

from kafka.errors import KafkaError, KafkaTimeoutError


class FakeFuture:
    """A produce future that is already acknowledged, or already failed."""

    def __init__(self, error: KafkaError | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeProducer:
    """Records sends; ``down=True`` makes every send unacknowledged, like a Kafka outage."""

    def __init__(self, down: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.down = down

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture(KafkaTimeoutError("broker unreachable") if self.down else None)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def keys(self) -> list[bytes]:
        return [k for _, k, _ in self.sent]
