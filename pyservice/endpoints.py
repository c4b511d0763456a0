"""Socket addresses on the command line: `tcp://HOST:PORT` or `unix:PATH`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Endpoint:
    host: str = ""
    port: int = 0
    unix_path: str | None = None

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path is not None else f"tcp://{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ValueError(f"'{text}': a unix endpoint needs a path")
        return Endpoint(unix_path=path)
    if text.startswith("tcp://"):
        host, sep, port = text[len("tcp://") :].rpartition(":")
        if sep and host and port.isdigit() and int(port) < 65536:
            return Endpoint(host=host.strip("[]"), port=int(port))
    raise ValueError(f"'{text}' is not tcp://HOST:PORT or unix:PATH")
