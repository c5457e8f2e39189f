"""The listening socket of ``mn serve``: its connections must not wait for delayed ACKs."""

from __future__ import annotations

import asyncio
import socket

from mirror_neuron.server.serve import listen


async def test_accepted_connections_have_nagle_off() -> None:
    """asyncio turns TCP_NODELAY on only for sockets made with IPPROTO_TCP; without it every
    response on a kept-alive connection waited ~40 ms (Nagle's algorithm + delayed ACK)."""
    sock = listen("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("socket")
        nodelay.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        assert await asyncio.wait_for(nodelay, 10) == 1
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
