"""A tracked service for the unprivileged mode: binds a TCP listener on a VIP when told.

``python -m tests.vip.listener_service --config F --node N --port P`` runs the
``proxy`` role on the shared runtime with the verbs vipd calls:
``POST /vip-listen {"vip", "address", "listen"}`` (bind/close a listener on
address:P with SO_REUSEPORT, answering each connect with the node name) and
``POST /vip {"vip", "state", ...}`` (recorded). Readiness toggles with
``POST /set-ready {"ready": bool}``. Stand-in for the proxy until it has them.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Iterable
from typing import Any

from twisted.internet import protocol

from imapha import log as imapha_log
from imapha.control import JsonObject, Verb
from imapha.daemon import DaemonContext, Service, ServiceBase, run_daemon


class _Answer(protocol.Protocol):
    def connectionMade(self) -> None:
        transport: Any = self.transport
        factory: Any = self.factory
        transport.write(factory.name.encode() + b"\n")
        transport.loseConnection()


class ListenerService(ServiceBase):
    def __init__(self, ctx: DaemonContext, port: int) -> None:
        super().__init__(ctx)
        self.port = port
        self.ready = True
        self.listeners: dict[str, Any] = {}
        self.told: list[JsonObject] = []

    def is_ready(self) -> tuple[bool, str]:
        return self.ready, "" if self.ready else "told so"

    def status(self) -> JsonObject:
        return {"listening": sorted(self.listeners), "told": self.told[-20:]}

    def verbs(self) -> Iterable[Verb]:
        yield Verb("POST", "/vip-listen", self._listen, "bind or close a VIP listener")
        yield Verb("POST", "/vip", self._vip, "what this node is for a VIP")
        yield Verb("POST", "/set-ready", self._set_ready, "test: set readiness")

    def _listen(self, body: JsonObject) -> JsonObject:
        address = str(body["address"])
        if body.get("listen"):
            if address not in self.listeners:
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind((address, self.port))
                sock.listen(128)
                sock.setblocking(False)
                factory = protocol.Factory.forProtocol(_Answer)
                factory.name = self.ctx.node  # type: ignore[attr-defined]
                self.listeners[address] = self.ctx.reactor.adoptStreamPort(
                    sock.fileno(), socket.AF_INET, factory)
                sock.close()  # adoptStreamPort duplicated it
        else:
            port = self.listeners.pop(address, None)
            if port is not None:
                port.stopListening()
        return {"listening": sorted(self.listeners)}

    def _vip(self, body: JsonObject) -> JsonObject:
        self.told.append(body)
        return {"ok": True}

    def _set_ready(self, body: JsonObject) -> JsonObject:
        self.ready = bool(body.get("ready"))
        return {"ready": self.ready}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    imapha_log.setup("info", "text")

    def factory(ctx: DaemonContext) -> Service:
        return ListenerService(ctx, options.port)

    return run_daemon("proxy", options.config, options.node, factory)


if __name__ == "__main__":
    sys.exit(main())
