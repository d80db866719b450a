"""Many cheap clients in one process (asyncio), for the web benches: idle Socket.IO websockets
that answer Engine.IO's pings as a browser tab left open does, and slow clients that send a
request's headers or body a byte at a time. Each client sends from a loopback address of a
range given to it (127.0.0.0/8 is all loopback), so a per-address cap counts them as the
different clients they stand for.

Run in a child process by bench.webapp: ``hold_idle`` / ``hold_slow`` report on a queue when
their connections are open, then hold them until told to stop, then report what happened.
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

GIVE_UP_AFTER = 400  # failed websockets after which the rest are not tried (a server that takes no more)


def addresses(prefix: str, count: int, per_address: int) -> list[str]:
    """``count`` source addresses, ``per_address`` clients each: prefix.x.y from prefix.0.1 on."""
    n = -(-count // per_address)
    return [f"{prefix}.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


async def _idle_client(url: str, source: str, stats: dict, stop: asyncio.Event, opened: asyncio.Semaphore,
                       timeout: float):
    import aiohttp

    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        if sum(stats["failed"].values()) >= GIVE_UP_AFTER:  # the server is not taking them: stop trying
            stats["failed"]["not tried"] = stats["failed"].get("not tried", 0) + 1
            return
        try:
            async with opened:  # at most so many handshakes at once
                if sum(stats["failed"].values()) >= GIVE_UP_AFTER:  # (checked again: many waited here)
                    stats["failed"]["not tried"] = stats["failed"].get("not tried", 0) + 1
                    return
                ws = await asyncio.wait_for(session.ws_connect(ws_url, autoping=True), timeout)
                hello = await asyncio.wait_for(ws.receive_str(), timeout)
                assert hello.startswith("0"), hello[:40]
                await ws.send_str("40")
                joined = await asyncio.wait_for(ws.receive_str(), timeout)
                assert joined.startswith("40"), joined[:40]
        except Exception as exc:  # refused, timed out, closed: counted by kind
            kind = f"{type(exc).__name__}: {str(exc)[:60]}"
            stats["failed"][kind] = stats["failed"].get(kind, 0) + 1
            return
        stats["connected"] += 1
        try:
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.receive(), 1.0)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT and message.data == "2":
                    await ws.send_str("3")  # Engine.IO's ping: a live tab answers
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    stats["dropped"] += 1
                    return
        finally:
            await ws.close()


async def _hold_idle(url, count, per_address, prefix, report, stop_flag, timeout):
    stats = {"connected": 0, "failed": {}, "dropped": 0}
    stop = asyncio.Event()
    opened = asyncio.Semaphore(200)
    began = time.monotonic()
    tasks = [asyncio.create_task(_idle_client(url, source, stats, stop, opened, timeout))
             for source in addresses(prefix, count, per_address) for _ in range(per_address)][:count]
    while stats["connected"] + sum(stats["failed"].values()) < len(tasks):
        await asyncio.sleep(0.2)
    report.put({"event": "open", "connected": stats["connected"], "failed": dict(stats["failed"]),
                "seconds_to_open": round(time.monotonic() - began, 1)})
    while not stop_flag.is_set():
        await asyncio.sleep(0.2)
    dropped = stats["dropped"]  # before we close them ourselves
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    report.put({"event": "closed", "dropped_by_server": dropped})


def hold_idle(url: str, count: int, per_address: int, prefix: str, report, stop_flag, timeout: float = 20.0) -> None:
    """Open ``count`` idle Socket.IO websockets (``per_address`` per source address), report,
    hold them (answering pings) until ``stop_flag``, report how many the server dropped."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_hold_idle(url, count, per_address, prefix, report, stop_flag, timeout))


async def _slow_client(host: str, port: int, source: str, body: bool, closed_after: list, began: float,
                       duration: float):
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except OSError:
        closed_after.append(None)
        return
    if body:
        head = (b"POST /api/v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4000\r\n\r\n")
        writer.write(head)
        trickle = b"{" + b" " * 3998 + b"}"
    else:
        trickle = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"s" * 4000 + b"\r\n\r\n"
    try:
        for byte in trickle:  # a byte a second, until the server closes the connection (or we give up)
            if time.monotonic() - began > duration:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(4096), 1.0)
                if data == b"" or data:
                    closed_after.append(time.monotonic() - began)
                    return
            except asyncio.TimeoutError:
                pass
        closed_after.append(None)  # never closed
    except OSError:
        closed_after.append(time.monotonic() - began)
    finally:
        writer.close()


async def _hold_slow(url, headers, bodies, per_address, prefix, report, duration):
    parts = urlsplit(url)
    closed_after: list = []
    began = time.monotonic()
    sources = addresses(prefix, headers + bodies, per_address)
    tasks = [asyncio.create_task(_slow_client(parts.hostname, parts.port, sources[i // per_address], i >= headers,
                                              closed_after, began, duration))
             for i in range(headers + bodies)]
    report.put({"event": "open"})
    await asyncio.gather(*tasks)
    report.put({"event": "closed", "closed_after_s": closed_after})


def hold_slow(url: str, headers: int, bodies: int, per_address: int, prefix: str, report,
              duration: float = 40.0) -> None:
    """``headers`` clients sending a request's headers and ``bodies`` sending a body, a byte a
    second each for at most ``duration`` s; report when started, then each one's seconds until
    the server answered or closed it (None: still open when it gave up)."""
    asyncio.run(_hold_slow(url, headers, bodies, per_address, prefix, report, duration))
