"""Who may connect to the bridge's listeners (pure: no sockets).

AudioSocket and FastAGI carry no authentication of their own, and either one reads or changes a
call: so both answer only peers on an allow-list, default deny. The default list is loopback and
the hosts of the configured AMI servers (the PBXs the bridge already trusts); `--allow` and
`--agi-allow` replace it. FastAGI can also require a shared secret (`secret=` in the request).
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

log = logging.getLogger(__name__)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
LOOPBACK = ("127.0.0.0/8", "::1/128")
ANY = ("0.0.0.0/0", "::/0")
REFUSALS_REMEMBERED = 1024  # peers whose refusal was logged (each is logged once)


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs, bare addresses, `loopback` or `any`, comma- or space-separated; ValueError with
    the bad entry for anything else."""
    networks: list[Network] = []
    for spec in specs:
        for item in spec.replace(",", " ").split():
            networks.extend(_parse_one(item))
    return tuple(networks)


def _parse_one(item: str) -> list[Network]:
    word = item.lower()
    if word == "loopback":
        return [ipaddress.ip_network(n) for n in LOOPBACK]
    if word == "any":
        return [ipaddress.ip_network(n) for n in ANY]
    try:
        return [ipaddress.ip_network(item.strip("[]"), strict=False)]
    except ValueError:
        raise ValueError(f"not an address or CIDR in an allow-list: {item!r} "
                         "(use e.g. 10.0.0.0/24, 192.0.2.7, loopback or any)") from None


def host_networks(hosts: Iterable[str]) -> tuple[Network, ...]:
    """The addresses of host names (the AMI hosts) as /32 or /128 networks; a name that does not
    resolve is left out with a warning (the bridge still starts)."""
    networks: list[Network] = []
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as error:
            log.warning("allow-list: AMI host %s does not resolve (%s): not allowed", host, error)
            continue
        for info in infos:
            networks.append(ipaddress.ip_network(info[4][0].split("%")[0]))
    return tuple(dict.fromkeys(networks))


@dataclass(frozen=True)
class AllowList:
    networks: tuple[Network, ...]

    @classmethod
    def default(cls, trusted_hosts: Sequence[str] = ()) -> "AllowList":
        return cls(parse_networks(LOOPBACK) + host_networks(trusted_hosts))

    @classmethod
    def from_specs(cls, specs: Sequence[str], trusted_hosts: Sequence[str] = ()) -> "AllowList":
        """`specs` when given, else the default (loopback and `trusted_hosts`)."""
        return cls(parse_networks(specs)) if specs else cls.default(trusted_hosts)

    def allows(self, host: Optional[str]) -> bool:
        if not host:
            return False  # a Unix socket or an unknown peer: not on any list
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "nobody"


class Gate:
    """One listener's allow-list, with its refusals counted and each peer's logged once."""

    def __init__(self, listener: str, allow: AllowList) -> None:
        self.listener, self.allow = listener, allow
        self.refused: Counter = Counter()  # reason -> refusals (read by metrics)
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()

    def admits(self, host: Optional[str]) -> bool:
        if self.allow.allows(host):
            return True
        self.refuse(host, "not-allowed")
        return False

    def refuse(self, host: Optional[str], reason: str) -> None:
        self.refused[reason] += 1
        key = (host or "?", reason)
        if key in self._logged:
            return
        self._logged[key] = None
        if len(self._logged) > REFUSALS_REMEMBERED:
            self._logged.popitem(last=False)
        log.warning("%s: refused %s (%s); further refusals of this peer are counted, not logged",
                    self.listener, host or "an unknown peer", reason)


def secret_matches(expected: str, given: Optional[str]) -> bool:
    """Constant-time comparison; no secret configured means none is needed."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
