"""Cluster mode: hosts draw addresses from shared subnets through etcd, with no hand-made plan.

Each host claims *blocks* of a subnet (aligned CIDRs, /26 by default) in etcd with an atomic
transaction, caches them in its state directory, and allocates inside them locally exactly as it
does without a cluster: claiming and giving back a block are the only cluster round trips. It is
on when the daemon has etcd endpoints (`--etcd-endpoints`); a pool with an address plan keeps its
plan. docs/cluster.md is the user's guide; the modules:

* `config`: the settings, checked at start-up;
* `layout`: every etcd key and value;
* `blocks`: carving blocks out of a span, and the compares that make a claim atomic (no I/O);
* `kv`: the key-value interface the claim logic needs, and an in-memory fake of it for tests;
* `etcd`: that interface on a real etcd cluster (JSON gateway, failover, bounded time);
* `claims`: claim, adopt, release, reclaim and the node registration, over the interface;
* `cache`: this host's blocks on disk (`cluster.sqlite3`);
* `mode`: `ClusterMode`, the `ClaimingHostRanges` the IPAM service uses, and its upkeep;
* `admin`: what `pymacvlan cluster status` and `reclaim` read and do.

Nothing is imported here: `pymacvlan --help` and the settings parser import `config` without
pulling in aiohttp.
"""
