"""DHCP mode: IPv4 addresses from the LAN's own DHCP server (`--ipam-opt dhcp=on`).

`identity` says who asks (MAC, client ID, host name), `exchange` bounds one conversation with the
server, `books` records leases next to the allocations, `timeline` and `due` decide when each
lease needs its next renewal, `keeper` runs the renewals, `mode` is what `IpamService` calls.
No module here touches a socket: the LAN is the `Lan` the plugin attaches (ipam/lan.py).
"""

from ipam.dhcp.mode import DhcpMode
from ipam.dhcp.settings import DhcpSettings

__all__ = ["DhcpMode", "DhcpSettings"]
