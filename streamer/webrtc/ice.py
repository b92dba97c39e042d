"""ICE settings every peer connection of the engine uses.

Two things aiortc does by default that an engine must not:

* with `iceServers=None` it adds Google's public STUN server, so every session would send packets
  off the machine; the engine asks for what it is configured with (`NO_STUN` unless told), and
* aioice offers every interface address except 127.0.0.1, so peers on the same machine (tests, a
  local browser) cannot reach it over loopback. `use_host_addresses(hosts)` makes aioice offer
  exactly `hosts` (e.g. `("127.0.0.1",)`, or the one address a camera network can reach); an empty
  tuple keeps aioice's own choice. aioice reads this process-wide, so it is a process setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

NO_STUN = RTCConfiguration(iceServers=[])

_AIOICE_DEFAULT: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def rtc_configuration(ice_servers: Sequence[str] = ()) -> RTCConfiguration:
    """The peer-connection configuration: no STUN/TURN unless `ice_servers` names some."""
    if not ice_servers:
        return NO_STUN
    return RTCConfiguration(iceServers=[RTCIceServer(urls=list(ice_servers))])


def ice_hosts_for(bind_host: str) -> tuple[str, ...]:
    """The host candidates that match an HTTP bind address: a viewer that can reach the API at
    `bind_host` can reach these. A wildcard bind offers every interface (aioice's choice: ())."""
    if bind_host in ("", "0.0.0.0", "::"):
        return ()
    if bind_host in ("localhost", "127.0.0.1", "::1"):
        return ("127.0.0.1",)
    return (bind_host,)


def use_host_addresses(hosts: Sequence[str]) -> None:
    """Offer exactly `hosts` as ICE host candidates from now on; () restores aioice's default."""
    if not hosts:
        aioice.ice.get_host_addresses = _AIOICE_DEFAULT  # type: ignore[assignment]
        return
    chosen = list(hosts)

    def fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [h for h in chosen if (":" in h and use_ipv6) or (":" not in h and use_ipv4)]

    aioice.ice.get_host_addresses = fixed
