"""The link layer: every netlink call pymacvlan makes, behind small verbs.

The only package of the project that imports pyroute2, one job per module:

* ``layer``: the verbs (``LinkLayer``): get, list, create, delete and change links, addresses and
  routes; nothing else, as moby's macvlan_setup.go;
* ``events``: the kernel's link notifications, read into bounded batches (``LinkEvents``);
* ``channel``: the one netlink socket for requests, each request read to its last message so
  that pyroute2 keeps nothing behind;
* ``translate``: kernel errno + what was being done → a ``driver.errors`` class and a message;
* ``decode``: pyroute2's link message → ``driver.linkinfo.LinkInfo``;
* ``ipvlan``: ipvlan's attributes, which pyroute2 0.9.7 only half knows.

pyroute2 is untyped: ``Any`` stays inside this package; callers get ``LinkInfo`` and ``ipaddress``
values.
"""

from driver.netlink.events import LinkEvents
from driver.netlink.layer import LinkLayer

__all__ = ["LinkEvents", "LinkLayer"]
