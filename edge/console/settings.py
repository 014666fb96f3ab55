"""Where the console listens and with which certificate, checked before anything is served.

The console is off unless ``[console] enabled = true``. It listens on one address
only: a loopback address (reached through an SSH tunnel, or the kiosk's own screen),
or the address of one network interface, given as the address or as the interface's
name (``eth0``). All-interfaces addresses (0.0.0.0, ::) are refused, and so is an
address this machine does not have.
"""
from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from edge import paths
from edge.exc import ConfigError

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: bool
    address: str
    port: int
    certificate: Path
    private_key: Path
    session_s: float

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}/"


def from_table(table: dict, home: Path) -> ConsoleSettings:
    """From the daemon settings' [console] section (or the hub's), files defaulting under ``home``."""
    folder = home / "console"
    return ConsoleSettings(bool(table.get("enabled", False)), listen_address(str(table.get("listen", "127.0.0.1"))),
                           int(table.get("port", 8443)),
                           Path(table.get("certificate") or folder / "cert.pem").expanduser(),
                           Path(table.get("private_key") or folder / "key.pem").expanduser(),
                           float(table.get("session_s", 900.0)))


def kiosk_settings(settings) -> ConsoleSettings:
    return from_table(settings.console, paths.home())


def listen_address(listen: str) -> str:
    """The address to bind for ``listen`` (an address or an interface name), or ConfigError."""
    listen = listen.strip()
    try:
        address = ipaddress.ip_address(listen)
    except ValueError:
        return interface_address(listen)
    if address.is_unspecified:
        raise ConfigError(f"[console] listen = {listen!r} would serve the console on every interface; give a "
                          "loopback address (127.0.0.1) or the address or name of one interface")
    check_local(str(address))
    return str(address)


def interface_address(name: str) -> str:
    if len(name.encode()) > 15 or not name.replace("-", "").replace(".", "").replace("_", "").isalnum():
        raise ConfigError(f"[console] listen = {name!r} is neither an address nor an interface name")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()))
    except OSError as error:
        raise ConfigError(f"[console] listen = {name!r}: no such interface with an IPv4 address "
                          f"({error.strerror})") from None
    finally:
        probe.close()
    return socket.inet_ntoa(answer[20:24])


def check_local(address: str) -> None:
    """ConfigError unless this machine has ``address`` (binding to it is the test)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.bind((address, 0))
    except OSError:
        raise ConfigError(f"[console] listen = {address!r} is not an address of this machine; give a loopback "
                          "address or one of its interfaces' addresses") from None
    finally:
        probe.close()
