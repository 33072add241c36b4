# The managed plugin's rootfs: pymacvlan in a virtualenv on a small Python 3.11 image.
#
# Build it with scripts/build-plugin, which first puts the wheels into dist/wheels (pymacvlan and
# every dependency, built on the host for this image's Python and platform) and then turns the
# image into a `docker plugin`. Nothing is downloaded during the build (`--no-index`), so it works
# where the build has no route to PyPI, and the image is the same wherever it is built.
#
# BASE must provide python3 3.11 with the venv module: the default upstream image, or a local one
# (the tests use a debootstrap'd Debian bookworm imported as pymacvlan-base:bookworm).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
COPY dist/wheels/ /tmp/wheels/
# pip and setuptools are only needed to install: removed, so the venv holds pymacvlan and its
# dependencies and nothing else. Byte code is compiled now (pip does it on install), because the
# plugin must answer on its socket within half a second of starting.
RUN python3 -m venv /opt/pymacvlan \
    && /opt/pymacvlan/bin/python -m pip install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /tmp/wheels pymacvlan \
    && /opt/pymacvlan/bin/python -m pip uninstall --yes --disable-pip-version-check pip setuptools \
    && /opt/pymacvlan/bin/pymacvlan --version

# Only the virtualenv is copied: the wheels and any pip cache stay in the build stage. The plugin's
# rootfs is this image flattened (docker export), so files removed here are really gone from it:
# package caches and lists, documentation except the licences, translations (a no-op on the slim
# upstream image; about 140 MB of a debootstrap'd base).
FROM ${BASE}
RUN rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/man/* /usr/share/info/* \
        /usr/share/locale/* \
    && find /usr/share/doc -type f ! -name copyright -delete
COPY --from=build /opt/pymacvlan /opt/pymacvlan
ENV PATH=/opt/pymacvlan/bin:$PATH \
    PYTHONUNBUFFERED=1
# The plugin's entrypoint is config.json's; this one is for `docker run --network host ...`.
ENTRYPOINT ["/opt/pymacvlan/bin/pymacvlan", "serve"]
