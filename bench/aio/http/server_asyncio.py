"""Python asyncio (or uvloop with --uvloop) peer of benchmark (a).

Uses asyncio.Protocol, the fastest pure-asyncio way to serve, and the same
request counting as the C++ servers (http_common.hpp).
Usage: server_asyncio.py PORT [--uvloop]
"""
import asyncio
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: b\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\n\r\nHello, World!")


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        if self.buf:
            data = self.buf + data
        n = data.count(b"\r\n\r\n")
        end = data.rfind(b"\r\n\r\n")
        self.buf = data[end + 4:] if end >= 0 else data
        if n == 1:
            self.transport.write(RESPONSE)
        elif n > 1:
            self.transport.write(RESPONSE * n)


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hello, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1])
    if "--uvloop" in sys.argv[2:]:
        import uvloop
        uvloop.install()
    asyncio.run(main(port))
