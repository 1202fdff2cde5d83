"""A real TCP-MD5 (RFC 2385) socket pair on 127.0.0.1, keyed with TCP_MD5SIG; run in a netns.

Usage: python3 md5_sockets.py KEY PORT  -> prints "ready" once ESTABLISHED, then sleeps.
"""
from __future__ import annotations

import socket
import struct
import sys
import time

TCP_MD5SIG = 14  # linux/tcp.h


def set_md5(sock: socket.socket, peer: str, key: bytes) -> None:
    address = (struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0)
               + socket.inet_aton(peer)).ljust(128, b"\0")       # struct sockaddr_storage
    option = address + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(80, b"\0")
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, option)


def main() -> None:
    key, port = sys.argv[1].encode(), int(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    set_md5(server, "127.0.0.1", key)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.socket()
    set_md5(client, "127.0.0.1", key)
    client.connect(("127.0.0.1", port))
    accepted, _ = server.accept()
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
