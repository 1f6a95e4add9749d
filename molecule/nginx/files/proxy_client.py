#!/usr/bin/env python3
"""A load balancer's connection, from the control node: the PROXY protocol
(v1) line claiming a client address, then one HTTPS (or plain HTTP) request.

    proxy_client.py ADDRESS CLIENT_IP PORT PATH [--https SNI --cafile CA] [--no-proxy]

Prints {"status": <int or null>, "body": <text>, "error": <text>} as JSON, so
the nginx scenario's side effect can record what nginx answered.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl


def request(args: argparse.Namespace) -> dict[str, object]:
    """Open the connection, send the PROXY line and the request, read the answer."""
    sock = socket.create_connection((args.address, args.port), timeout=10)
    local_port = sock.getsockname()[1]
    if not args.no_proxy:
        line = f"PROXY TCP4 {args.client_ip} {args.address} {local_port + 1} {args.port}\r\n"
        sock.sendall(line.encode())
    conn: socket.socket = sock
    if args.https:
        context = ssl.create_default_context(cafile=args.cafile)
        conn = context.wrap_socket(sock, server_hostname=args.https)
    host = args.https or "www.ocpizza.com"
    conn.sendall(f"GET {args.path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else None
    return {"status": status, "body": body.decode(errors="replace"), "error": ""}


def main() -> None:
    """Parse the arguments, make the request, print the outcome as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("client_ip")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--https", metavar="SNI", default="")
    parser.add_argument("--cafile")
    parser.add_argument("--no-proxy", action="store_true")
    args = parser.parse_args()
    try:
        outcome = request(args)
    except (OSError, ValueError, IndexError) as exc:
        outcome = {"status": None, "body": "", "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
