"""Drives weir's forward source as third-party clients do.

message HOST PORT      fluent-logger's FluentSender (Message mode, EventTime)
modes HOST PORT [KEY]  Forward, PackedForward and CompressedPackedForward
                       messages, each with a chunk that must come back as
                       its ack; with KEY, the shared_key handshake first,
                       checking the server's proof too
badkey HOST PORT KEY   the handshake with a wrong key: PONG must refuse
"""
import gzip
import hashlib
import socket
import sys
import time

import msgpack
from fluent import sender


def event_time(seconds, nanos):
    return msgpack.ExtType(0, seconds.to_bytes(4, "big") + nanos.to_bytes(4, "big"))


def entry(i, mode):
    return [event_time(1_700_000_000 + i, 123_456_789), {"log": f"{mode} {i}", "i": i, "mode": mode}]


class Connection:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.unpacker = msgpack.Unpacker(raw=False)

    def receive(self):
        while True:
            for item in self.unpacker:
                return item
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("the server closed the connection")
            self.unpacker.feed(data)

    def handshake(self, key, hostname="client-host"):
        helo = self.receive()
        assert helo[0] == "HELO", helo
        nonce = helo[1]["nonce"]
        if isinstance(nonce, str):
            nonce = nonce.encode()
        salt = b"0123456789abcdef"
        digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
        self.sock.sendall(msgpack.packb(["PING", hostname, salt, digest, "", ""]))
        pong = self.receive()
        assert pong[0] == "PONG", pong
        if pong[1]:
            proof = hashlib.sha512(salt + pong[3].encode() + nonce + key.encode()).hexdigest()
            assert pong[4] == proof, "the server does not know the key"
        return pong

    def send_with_ack(self, message, chunk):
        self.sock.sendall(msgpack.packb(message, use_bin_type=True))
        ack = self.receive()
        assert ack == {"ack": chunk}, ack


def modes(host, port, key=None):
    conn = Connection(host, port)
    if key:
        pong = conn.handshake(key)
        assert pong[1] is True, pong
    n = 0
    forward = [entry(i, "forward") for i in range(3)]
    conn.send_with_ack(["app.forward", forward, {"chunk": "c-forward", "size": 3}], "c-forward")
    n += 3
    packed = b"".join(msgpack.packb(e) for e in (entry(i, "packed") for i in range(3)))
    conn.send_with_ack(["app.packed", packed, {"chunk": "c-packed", "size": 3}], "c-packed")
    n += 3
    compressed = gzip.compress(b"".join(msgpack.packb(e) for e in (entry(i, "compressed") for i in range(3))))
    conn.send_with_ack(
        ["app.compressed", compressed, {"chunk": "c-compressed", "size": 3, "compressed": "gzip"}],
        "c-compressed",
    )
    n += 3
    print(f"acked {n}")


def message(host, port):
    fluent = sender.FluentSender("app", host=host, port=port, nanosecond_precision=True)
    for i in range(3):
        assert fluent.emit_with_time("message", 1_700_000_000 + i + 0.5, {"log": f"message {i}", "i": i}), fluent.last_error
    fluent.close()
    print("sent 3")


def badkey(host, port, key):
    conn = Connection(host, port)
    pong = conn.handshake(key)
    assert pong[1] is False and pong[2] == "shared_key mismatch", pong
    print("refused")


if __name__ == "__main__":
    command, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = sys.argv[4:]
    {"modes": modes, "message": message, "badkey": badkey}[command](host, port, *rest)
