"""`pymacvlan doctor`: why container traffic does not flow, one check at a time.

Each check has a name, a subject, a verdict (ok, warning, problem, skipped), what it found and
what to do (``model``). The same checks run in the daemon (plugin/admin/doctor.py, its route) or,
when no daemon answers, in the command line's own process (``local``). One job per module:

* ``scene``: what the checks look at: the request, the status report (plugin/admin/report.py),
  the host's link layer and one dump of its links;
* ``parent``: the parent exists, is up, has carrier, is not Wi-Fi nor a port of a bond, bridge or
  team; the network's MTU fits;
* ``modules``: the kernel can make macvlan, ipvlan and 802.1q links (driver/diagnose/);
* ``wire``: the checks that send frames: the child-MAC test (driver/diagnose/child_mac.py), the
  host shim reaching a container;
* ``claims``: other devices holding the containers' or the pools' addresses;
* ``consistency``: the state against itself and the host's links;
* ``runner``: runs them all, a crash being that check's problem; ``render``: the text output.
"""
