"""common.call_service: resends an idempotent request whose reply was lost (Fast DDS drops a
reply when the server has not yet matched the client's reader), never a non-idempotent one."""
from crl_ros.nodes import common


class FakeClient:
    def __init__(self, replies, available=True):
        self.replies = list(replies)
        self.available = available
        self.sent = []

    def wait_for_service(self, timeout_sec):
        return self.available

    def call(self, request, timeout_sec):
        self.sent.append((request, timeout_sec))
        return self.replies.pop(0) if self.replies else None


def test_idempotent_request_is_resent_after_a_lost_reply():
    client = FakeClient([None, None, "ok"])
    assert common.call_service(client, "req", timeout=5.0, attempt_timeout=0.5) == "ok"
    assert [r for r, _ in client.sent] == ["req"] * 3
    assert all(t <= 0.5 for _, t in client.sent)


def test_non_idempotent_request_is_sent_once():
    client = FakeClient([None, "late"])
    assert common.call_service(client, "req", timeout=2.0, retry=False) is None
    assert len(client.sent) == 1 and client.sent[0][1] > 1.0


def test_unavailable_service_gives_none_without_sending():
    client = FakeClient(["ok"], available=False)
    assert common.call_service(client, "req", timeout=0.1) is None
    assert client.sent == []


class RaisingClient(FakeClient):
    """rclpy 9's Client.call: TimeoutError when no reply came in time (earlier: None)."""

    def call(self, request, timeout_sec):
        reply = super().call(request, timeout_sec)
        if reply is None:
            raise TimeoutError()
        return reply


def test_a_timeout_error_from_rclpy_is_a_lost_reply_too():
    client = RaisingClient([None, "ok"])
    assert common.call_service(client, "req", timeout=5.0, attempt_timeout=0.5) == "ok"
    assert len(client.sent) == 2
    assert common.call_service(RaisingClient([]), "req", timeout=1.0, attempt_timeout=0.3) is None
    assert common.call_service(RaisingClient([]), "req", timeout=1.0, retry=False) is None
