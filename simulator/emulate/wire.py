"""The emulation's message channel: one TCP stream between the PS and each worker.

Protocol messages (uploads, control reports, downloads) and the worker's notices travel as
length-prefixed pickles on a plain asyncio stream, opened once per worker at set-up. Dask's
actor calls (each a task, a reply and several hops through its comms) cost the PS about 1.2 ms
of Python per message, measured: more than the simulator's whole network model for a burst of
m downloads and m uploads; a stream write and read cost a few tens of microseconds. Dask still
places the workers and carries the set-up calls (prepare, start, finish), which are not timed.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct

#: The length prefix of a frame: 4 bytes, big-endian.
HEADER = struct.Struct("!I")


def frame(item: object) -> bytes:
    """One item as bytes on the stream."""
    body = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> object:
    """The next item of the stream (``asyncio.IncompleteReadError`` at its end)."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def no_delay(writer: asyncio.StreamWriter) -> None:
    """Send small frames at once (no Nagle wait for more bytes to fill a segment)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reachable_host(scheduler: str) -> str:
    """This machine's address as seen from the cluster of ``scheduler`` (tcp://HOST:PORT): the
    source address of a route to it (no packet is sent)."""
    host = scheduler.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, 9))
        return probe.getsockname()[0]
    except OSError:  # no route known here (a name this host cannot resolve, say): its own name
        return socket.gethostbyname(socket.gethostname())
    finally:
        probe.close()
