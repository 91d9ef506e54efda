"""Which revision and target answer a request to a deployment.

A request goes to the canary revision with probability ``canary_percent / 100``, else to the
stable one; inside the revision a target is drawn by weight. With a **sticky key** (the
request's ``user`` field, or the sticky header) both draws come from a hash of the deployment
name and the key instead of a random number, so one member keeps one revision and target for
as long as the split stays; raising the canary's share only moves members from stable to
canary (the hash is compared with the share), never back.

Deployments are read from the store and cached for ``ttl_s`` (a change made in this process
is seen at once: the service invalidates; one made by another process within ``ttl_s``).
Revisions are immutable and cached for good.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass

from plinth.domain.deployments import Deployment, Revision, Role, Target
from plinth.store import MetadataStore


@dataclass(frozen=True)
class Choice:
    deployment: Deployment
    revision: Revision
    role: Role
    target: Target


def unit(*parts: object) -> float:
    """A number in [0, 1) from a hash of ``parts`` (uniform, stable across processes)."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_target(targets: tuple[Target, ...], u: float) -> Target:
    total = sum(t.weight for t in targets)
    point = u * total
    acc = 0.0
    for t in targets:
        acc += t.weight
        if point < acc:
            return t
    return targets[-1]


def choose(deployment: Deployment, revisions: dict[int, Revision], sticky: str | None, rng: random.Random) -> Choice:
    u = unit(deployment.name, sticky) if sticky else rng.random()
    if deployment.canary_revision is not None and u < deployment.canary_percent / 100.0:
        number, role = deployment.canary_revision, Role.CANARY
    else:
        number, role = deployment.stable_revision, Role.STABLE
    revision = revisions[number]
    v = unit(deployment.name, number, sticky) if sticky else rng.random()
    return Choice(deployment, revision, role, pick_target(revision.targets, v))


class DeploymentRouter:
    def __init__(self, store: MetadataStore, *, ttl_s: float = 2.0, rng: random.Random | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.rng = rng or random.Random()
        self._names: tuple[float, frozenset[str]] | None = None
        self._deployments: dict[str, tuple[float, Deployment | None]] = {}
        self._revisions: dict[tuple[str, int], Revision] = {}
        self._lock = threading.Lock()

    def names(self) -> frozenset[str]:
        now = time.monotonic()
        cached = self._names
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        names = frozenset(d.name for d in self.store.list_deployments())
        self._names = (now, names)
        return names

    def is_fresh(self, name: str) -> bool:
        """True when answering for ``name`` needs no store read."""
        now = time.monotonic()
        cached = self._names
        if cached is None or now - cached[0] >= self.ttl_s:
            return False
        if name not in cached[1]:
            return True
        hit = self._deployments.get(name)
        return hit is not None and now - hit[0] < self.ttl_s

    def lookup(self, name: str) -> tuple[Deployment, dict[int, Revision]] | None:
        """The deployment named ``name`` with its live revisions, or None when it is not one."""
        if name not in self.names():
            return None
        now = time.monotonic()
        hit = self._deployments.get(name)
        if hit is not None and now - hit[0] < self.ttl_s:
            dep = hit[1]
        else:
            dep = self.store.find_deployment(name)
            self._deployments[name] = (now, dep)
        if dep is None:
            return None
        revisions = {}
        for number in (dep.stable_revision, dep.canary_revision):
            if number is None:
                continue
            rev = self._revisions.get((name, number))
            if rev is None:
                rev = self.store.get_revision(name, number)
                with self._lock:
                    self._revisions[(name, number)] = rev
            revisions[number] = rev
        return dep, revisions

    def route(self, name: str, sticky: str | None) -> Choice | None:
        found = self.lookup(name)
        if found is None:
            return None
        return choose(found[0], found[1], sticky, self.rng)

    def invalidate(self, name: str | None = None) -> None:
        self._names = None
        if name is None:
            self._deployments.clear()
            with self._lock:
                self._revisions.clear()
        else:
            self._deployments.pop(name, None)
            with self._lock:
                for k in [k for k in self._revisions if k[0] == name]:
                    del self._revisions[k]
