"""Stable values for object metadata: uids, generated-name suffixes, hashes and timestamps,
derived from names and seeds so that every read shows the same object."""

from __future__ import annotations

import datetime
import hashlib
import uuid

from aksim.fleetfile import Cluster

# Each cluster "was created" on a day after this one picked by its seed: stable timestamps.
EPOCH = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC).timestamp()
# Kubernetes' own alphabet for generated name suffixes (no vowels, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_UID_NAMESPACE = uuid.UUID("0e4f7a1c-6c2b-4d0a-9a57-5b8c1d2e3f40")


def timestamp(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(int(moment), datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


def stable_uid(*parts: str) -> str:
    return str(uuid.uuid5(_UID_NAMESPACE, "/".join(parts)))


def name_suffix(length: int, *parts: str) -> str:
    """A stable suffix in Kubernetes' generated-name alphabet."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in digest[:length])


def stable_hex(length: int, *parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def minor_version(version: str) -> int:
    return int(version.split(".")[1])


def cluster_created(spec: Cluster) -> float:
    return EPOCH + (spec.seed % 365) * 86400.0
