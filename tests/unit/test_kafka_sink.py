"""The producer adapter waits when its local queue is full instead of failing."""

from plantlake.adapters.kafka import send_waiting


class FullQueueProducer:
    """A producer whose queue is full until delivery reports have been served `frees` times."""

    def __init__(self, frees: int) -> None:
        self.frees = frees
        self.polls: list[float] = []
        self.sent: list[tuple] = []

    def produce(self, topic, **message) -> None:
        if len(self.polls) < self.frees:
            raise BufferError("Local: Queue full")
        self.sent.append((topic, message))

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0


def test_a_full_queue_is_waited_out_with_poll_then_the_message_is_sent_once():
    producer = FullQueueProducer(frees=3)
    send_waiting(producer, "t", key=b"k", value=b"v")
    assert producer.polls == [0.1, 0.1, 0.1]
    assert producer.sent == [("t", {"key": b"k", "value": b"v"})]


def test_a_free_queue_sends_without_waiting():
    producer = FullQueueProducer(frees=0)
    send_waiting(producer, "t", value=b"v")
    assert producer.polls == [] and len(producer.sent) == 1
