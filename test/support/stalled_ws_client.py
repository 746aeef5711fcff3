"""A WebSocket client that stops reading, for tests: its socket's receive buffer is set to a few
kilobytes (so its kernel cannot soak up what the server sends, as an autotuned one would), it
sends what it is told on stdin ("send <text>"), and reads nothing until told "read"; then it
prints each message it receives as a line (text as is, binary as {"binary": <length>}).

Usage: stalled_ws_client.py HOST PORT PATH_WITH_QUERY
"""
import base64
import json
import os
import socket
import struct
import sys
import threading


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", n)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_messages(sock):
    while True:
        first, second = read_exactly(sock, 2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", read_exactly(sock, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", read_exactly(sock, 8))[0]
        payload = read_exactly(sock, n)
        opcode = first & 0x0F
        if opcode == 1:
            print(payload.decode(), flush=True)
        elif opcode == 2:
            print(json.dumps({"binary": n}), flush=True)
        elif opcode == 8:
            return


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    print(json.dumps({"open": answer.split(b"\r\n")[0].decode()}), flush=True)
    for line in sys.stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        if command == "send":
            send_text(sock, rest)
        elif command == "read":
            threading.Thread(target=read_messages, args=(sock,), daemon=True).start()
    sock.close()


if __name__ == "__main__":
    main()
