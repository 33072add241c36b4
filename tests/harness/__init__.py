"""Test harness shared by every test layer.

One module per job:

* `prereq`: skip outside CI, fail under ``CI=true`` when a prerequisite is missing; `slow()`.
* `paths`: the checkout, its .venv, the git-ignored ``.work`` directory, scratch space.
* `proc`: start, signal and reap processes the tests own (by pid, never by name).
* `unixhttp`: HTTP over a unix socket (readiness probes, plugin calls, the Engine API).
* `netns`: throwaway network namespaces, veth pairs, bridge "switches", commands inside them.
* `plugind`: our daemon as a process (optionally inside a namespace), on a plugin socket.
* `dockerd`: a real dockerd owned by the test session (one per machine), and its engines.
* `images`: the busybox test image and the cached debootstrap base image.
* `guest`: run ``tests/guest`` inside a virtme-ng guest with Debian's full kernel.

The fixtures that wrap these live in ``tests/conftest.py``; README.md shows how to use them.
Network safety is enforced here: only namespaces the harness created, only documentation ranges,
never ``eth0``.
"""
