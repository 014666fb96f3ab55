"""Site and device names, and the MQTT topics built from them.

Names go into topics, ACL lines, file names and certificate subjects, so they are
kept to lower-case letters, digits and dashes: nothing in them can be a topic
wildcard (+ #), a path separator or a line break in the broker's files.

Topics (one tree per site; the broker's ACL gives a device only its own branch):

    edge/SITE/changes              hub -> kiosks   one message per committed change (QoS 1)
    edge/SITE/head                 hub -> kiosks   retained heartbeat: last sequence number, site policy
    edge/SITE/device/DEV/req       kiosk -> hub    sync requests (after sequence N), kiosk enrollments
    edge/SITE/device/DEV/resp      hub -> kiosk    sync answers, event acknowledgements, enrollment answers
    edge/SITE/device/DEV/events    kiosk -> hub    decision events (QoS 1, one id each)
    edge/SITE/device/DEV/status    kiosk           retained "online"/"offline" (the last will)
"""
from __future__ import annotations

import re

from edge.exc import ConfigError

ROOT = "edge"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_name(kind: str, name) -> str:
    """A site or device name, or ConfigError saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{kind} name {name!r} is not allowed: use 1 to 63 lower-case letters, digits and dashes, "
                          "starting with a letter or digit (e.g. 'door-12')")
    return name


def changes(site: str) -> str:
    return f"{ROOT}/{site}/changes"


def head(site: str) -> str:
    return f"{ROOT}/{site}/head"


def device(site: str, name: str, leaf: str) -> str:
    """edge/SITE/device/NAME/LEAF, LEAF one of req, resp, events, status."""
    return f"{ROOT}/{site}/device/{name}/{leaf}"


DEVICE_LEAVES = ("req", "resp", "events", "status")
# What a device may do on its site's tree (the broker's ACL is written from this table).
DEVICE_READS = ("changes", "head", "resp")
DEVICE_WRITES = ("req", "events", "status")


def device_acl(site: str, name: str) -> list[tuple[str, str]]:
    """[(access, topic)] for one device: read its site's changes and head and its own answers,
    write only its own requests, events and status."""
    rules = [("read", changes(site)), ("read", head(site)), ("read", device(site, name, "resp"))]
    rules += [("write", device(site, name, leaf)) for leaf in DEVICE_WRITES]
    return rules


def parse_device_topic(topic: str) -> tuple[str, str, str] | None:
    """(site, device, leaf) of edge/SITE/device/DEV/LEAF, else None."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[2] != "device" or parts[4] not in DEVICE_LEAVES:
        return None
    return parts[1], parts[3], parts[4]
