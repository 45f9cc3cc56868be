"""Capturing proxy for the golden frames in this directory (see README.md).

    python3 capture_proxy.py LISTEN_PORT UPSTREAM_PORT OUTDIR

Forwards Kafka traffic from 127.0.0.1:LISTEN_PORT to a broker on 127.0.0.1:UPSTREAM_PORT,
writes every request frame (without its 4-byte size) to
OUTDIR/c<conn>-<seq>-key<api key>-v<version>.bin, and lowers the max versions in
ApiVersions responses to CAPS (this broker's version table, with Produce capped at 9 so
that clients send v9) so clients choose versions this broker serves.
"""
import socket, struct, sys, threading, os, itertools
LISTEN, UPSTREAM, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
CAPS = {0: 9, 1: 12, 2: 7, 3: 12, 18: 4, 19: 7, 20: 5, 23: 4, 32: 4, 37: 3, 44: 1, 60: 1}
os.makedirs(OUT, exist_ok=True)
conn_ids = itertools.count()

def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def uvarint(b, i):
    v = shift = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7f) << shift; shift += 7
        if not x & 0x80:
            return v, i

def skip_tags(b, i):
    n, i = uvarint(b, i)
    for _ in range(n):
        _, i = uvarint(b, i)
        size, i = uvarint(b, i)
        i += size
    return i

def cap_api_versions(body, version):
    b = bytearray(body)
    i = 4 + 2  # correlation id, error code
    if version >= 3:
        n, i = uvarint(b, i); n -= 1
    else:
        n = struct.unpack(">i", b[i:i+4])[0]; i += 4
    for _ in range(max(n, 0)):
        key, lo, hi = struct.unpack(">hhh", b[i:i+6])
        if key in CAPS and hi > CAPS[key]:
            b[i+4:i+6] = struct.pack(">h", CAPS[key])
        i += 6
        if version >= 3:
            i = skip_tags(b, i)
    return bytes(b)

def handle(client):
    cid = next(conn_ids)
    up = socket.create_connection(("127.0.0.1", UPSTREAM))
    pending = {}
    lock = threading.Lock()
    def c2u():
        seq = 0
        try:
            while True:
                size = read_exact(client, 4)
                frame = read_exact(client, struct.unpack(">i", size)[0])
                key, ver, corr = struct.unpack(">hhi", frame[:8])
                with lock:
                    pending[corr] = (key, ver)
                with open(f"{OUT}/c{cid:02}-{seq:03}-key{key}-v{ver}.bin", "wb") as f:
                    f.write(frame)
                seq += 1
                up.sendall(size + frame)
        except (EOFError, OSError):
            pass
        finally:
            try: up.shutdown(socket.SHUT_WR)
            except OSError: pass
    def u2c():
        try:
            while True:
                size = read_exact(up, 4)
                body = read_exact(up, struct.unpack(">i", size)[0])
                corr = struct.unpack(">i", body[:4])[0]
                with lock:
                    key, ver = pending.pop(corr, (None, None))
                if key == 18:
                    body = cap_api_versions(body, ver)
                client.sendall(size + body)
        except (EOFError, OSError):
            pass
        finally:
            try: client.shutdown(socket.SHUT_WR)
            except OSError: pass
    threading.Thread(target=c2u, daemon=True).start()
    threading.Thread(target=u2c, daemon=True).start()

srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", LISTEN)); srv.listen(64)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
