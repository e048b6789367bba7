"""NUMA-local placement of a guest around its devices.

Given a host's NUMA nodes, the nodes of the devices a guest gets and the
guest's size, :func:`place` says where its vCPUs and memory go, and
:func:`can_fit` answers the scheduler's yes/no question per host cheaply.

The rules:

* devices all on node N: the guest goes on N when N has room;
* devices on several nodes: the guest goes on the union of those nodes;
* a device whose node is unknown (or not a node of this host): the guest
  cannot be aligned;
* room means free memory for the guest's memory, and CPUs for its vCPUs:
  unpinned CPUs for a guest with dedicated CPUs, the node's CPUs for a
  shared-CPU guest (which may not have more vCPUs than the nodes have
  CPUs, or its vCPUs would contend with each other).  A memory-only node
  (CXL, HBM) offers memory and no CPUs;
* policy ``required``: no alignment raises
  :class:`~cyborg_nova.errors.NumaFitError`; ``preferred``: the guest goes
  anywhere on the host, unconstrained, and the explanation says why;
  ``none``: never constrained.

Dedicated CPUs are pinned whole SMT cores first when the nodes' sibling sets
are given; the rest come from cores already partly used.

This module is pure: it imports nothing from Nova, oslo or libvirt.
"""

import collections
import dataclasses
from typing import Mapping, Optional, Sequence, Union

from cyborg_nova import errors

REQUIRED = 'required'
PREFERRED = 'preferred'
NONE = 'none'
POLICIES = (REQUIRED, PREFERRED, NONE)

#: Device NUMA nodes: a list of nodes (None when unknown), or a mapping of
#: device name (its PCI address) to node; names appear in explanations.
Devices = Union[Sequence[Optional[int]], Mapping[str, Optional[int]]]


@dataclasses.dataclass(frozen=True)
class NumaCell:
    """One host NUMA node, as the fitting sees it.

    ``cpus``: the CPUs shared-CPU guests may float on (in Nova, the node's
    ``cpuset``: its part of ``cpu_shared_set``); ``free_cpus``: the CPUs not
    yet pinned that dedicated CPUs may be taken from (``pcpuset`` minus
    ``pinned_cpus``); ``free_memory_mb``: memory left for guests;
    ``siblings``: optional SMT thread sets (``({0, 16}, {1, 17}, ...)``).
    Iterables are stored as frozensets.
    """

    cpus: frozenset = frozenset()
    free_cpus: frozenset = frozenset()
    free_memory_mb: int = 0
    siblings: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, 'cpus', frozenset(self.cpus))
        object.__setattr__(self, 'free_cpus', frozenset(self.free_cpus))
        object.__setattr__(self, 'siblings',
                           tuple(frozenset(s) for s in self.siblings))

    @property
    def cpu_count(self):
        return len(self.cpus)

    @property
    def free_cpu_count(self):
        return len(self.free_cpus)


#: What :func:`can_fit` reads of a node: counts only, cheap to keep per host
#: in the scheduler.  A :class:`NumaCell` has the same attributes.
CellCapacity = collections.namedtuple(
    'CellCapacity', 'cpu_count free_cpu_count free_memory_mb')


@dataclasses.dataclass(frozen=True)
class GuestRequest:
    """What to place: the guest's size, its devices and its NUMA policy
    (None: the caller's default)."""

    vcpus: int
    memory_mb: int
    dedicated: bool = False
    devices: Devices = ()
    policy: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class NumaPlacement:
    """Where the guest goes.  Empty fields mean "no constraint".

    ``nodes``: the NUMA nodes the guest is confined to; ``cpuset``: its host
    CPUs (shared CPUs: every CPU of ``nodes``, each vCPU floats over all of
    them; dedicated: the pinned CPUs); ``pinning``: for dedicated CPUs, the
    host CPU of vCPU *i* is ``pinning[i]``; ``memory_nodes``: the nodes its
    memory is bound to, strictly.
    """

    nodes: tuple = ()
    cpuset: frozenset = frozenset()
    pinning: tuple = ()
    memory_nodes: tuple = ()
    aligned: bool = False
    explanation: str = ''

    @property
    def constrained(self):
        return bool(self.nodes)

    @property
    def pins(self):
        """``{vcpu: host cpu}`` (empty when vCPUs are not pinned)."""
        return dict(enumerate(self.pinning))


def can_fit(cells, devices, vcpus, memory_mb, dedicated=False,
            policy=PREFERRED):
    """Whether :func:`place` would succeed, in O(devices + nodes).

    *cells* maps node id to a :class:`CellCapacity` (or :class:`NumaCell`).
    Only ``required`` can fail; to ask whether alignment is *possible* (a
    weigher's question), pass ``policy='required'``.
    """
    if policy != REQUIRED:
        if policy not in POLICIES:
            raise _bad_policy(policy)
        return True
    nodes = set()
    for node in (devices.values() if isinstance(devices, Mapping)
                 else devices):
        if node is None or node not in cells:
            return False
        nodes.add(node)
    if not nodes:
        return True
    cpus = memory = 0
    for node in nodes:
        cell = cells[node]
        cpus += cell.free_cpu_count if dedicated else cell.cpu_count
        memory += cell.free_memory_mb
    return cpus >= vcpus and memory >= memory_mb


def place(cells, devices, vcpus, memory_mb, dedicated=False,
          policy=PREFERRED):
    """Place a guest of *vcpus* and *memory_mb* next to its *devices*.

    *cells* maps node id to :class:`NumaCell`; *devices* is a list of the
    devices' nodes or a ``{name: node}`` mapping (see :data:`Devices`).

    :returns: a :class:`NumaPlacement`.
    :raises NumaFitError: *policy* is ``required`` and the guest cannot be
        aligned; the message names the nodes, what was needed and what was
        free.
    :raises InvalidRequest: *policy* is not one of :data:`POLICIES`.
    """
    if policy not in POLICIES:
        raise _bad_policy(policy)
    if vcpus < 1 or memory_mb < 0:
        raise ValueError('a guest needs at least 1 vCPU and no negative '
                         'memory, not %r vCPUs and %r MiB'
                         % (vcpus, memory_mb))
    named = _named(devices)
    if policy == NONE:
        return NumaPlacement(explanation='not aligned: NUMA policy none')
    if not named:
        return NumaPlacement(explanation='not aligned: the guest has no '
                                         'devices to align with')
    nodes, problem = _device_nodes(cells, named)
    if problem is None:
        problem = _shortage(cells, nodes, named, vcpus, memory_mb,
                            dedicated)
    if problem is None:
        return _aligned(cells, nodes, named, vcpus, dedicated)
    if policy == REQUIRED:
        raise errors.NumaFitError(
            'cannot place the guest NUMA-local to its devices (NUMA policy '
            'required): %s. Choose a host with room there, a smaller '
            'flavor, or accelerator:numa_policy=preferred' % problem,
            nodes=nodes)
    return NumaPlacement(explanation='not aligned (NUMA policy preferred): '
                                     '%s; the guest may use any CPU and '
                                     'memory of the host' % problem)


def _bad_policy(policy):
    return errors.InvalidRequest('NUMA policy %r is not one of %s'
                                 % (policy, ', '.join(POLICIES)))


def _named(devices):
    """``[(name or None, node)]`` in a stable order."""
    if isinstance(devices, Mapping):
        return sorted(devices.items(), key=lambda kv: str(kv[0]))
    return [(None, node) for node in devices]


def _device_nodes(cells, named):
    """The devices' nodes, most devices first; or why they cannot be used."""
    counts = collections.Counter()
    for name, node in named:
        what = name or 'a device'
        if node is None:
            return (), ('the NUMA node of %s is unknown (the firmware does '
                        'not say)' % what)
        if node not in cells:
            return (), ('%s is on NUMA node %s, which this host does not '
                        'have (nodes: %s)'
                        % (what, node, ', '.join(map(str, sorted(cells)))))
        counts[node] += 1
    nodes = sorted(counts, key=lambda n: (-counts[n], n))
    return tuple(nodes), None


def _shortage(cells, nodes, named, vcpus, memory_mb, dedicated):
    """Why *nodes* cannot hold the guest, or None when they can."""
    chosen = [cells[n] for n in nodes]
    if dedicated:
        cpus = sum(c.free_cpu_count for c in chosen)
        have_cpus = '%d free dedicated CPUs' % cpus
        need_cpus = '%d dedicated CPUs' % vcpus
    else:
        cpus = sum(c.cpu_count for c in chosen)
        have_cpus = '%d CPUs for shared-CPU guests' % cpus
        need_cpus = '%d vCPUs' % vcpus
    memory = sum(c.free_memory_mb for c in chosen)
    if cpus >= vcpus and memory >= memory_mb:
        return None
    if not any(c.cpu_count or c.free_cpu_count for c in chosen):
        have_cpus = 'no CPUs (memory-only)'
    return ('%s (%s) %s %s and %d MiB free memory; the guest needs %s and '
            '%d MiB' % (_nodes_text(nodes),
                        _local_to(named, with_nodes=len(nodes) > 1),
                        'have' if len(nodes) > 1 else 'has', have_cpus,
                        memory, need_cpus, memory_mb))


def _aligned(cells, nodes, named, vcpus, dedicated):
    memory_nodes = tuple(sorted(nodes))
    if dedicated:
        pinning = []
        for node in nodes:
            if len(pinning) == vcpus:
                break
            pinning.extend(_pick(cells[node], vcpus - len(pinning)))
        cpuset = frozenset(pinning)
        cpus_text = 'vCPUs pinned to CPUs %s of %s' % (
            format_cpus(pinning), _nodes_text(memory_nodes))
    else:
        pinning = ()
        cpuset = frozenset().union(*(cells[n].cpus for n in nodes))
        cpus_text = 'vCPUs on %s (CPUs %s)' % (
            _nodes_text(memory_nodes), format_cpus(cpuset))
    return NumaPlacement(
        nodes=memory_nodes, cpuset=cpuset, pinning=tuple(pinning),
        memory_nodes=memory_nodes, aligned=True,
        explanation='%s, memory strict on %s: %s'
                    % (cpus_text, _nodes_text(memory_nodes),
                       _local_to(named, with_nodes=len(nodes) > 1)))


def _pick(cell, count):
    """*count* free CPUs of *cell*: whole free cores first, then threads of
    cores already partly used, then threads of the remaining whole cores."""
    free = cell.free_cpus
    whole, partial, seen = [], [], set()
    for core in cell.siblings:
        seen |= core
        threads = sorted(core & free)
        if threads:
            (whole if len(threads) == len(core) else partial).append(threads)
    whole.extend([cpu] for cpu in sorted(free - seen))
    whole.sort()
    partial.sort()
    picked, spare = [], []
    for threads in whole:
        if len(picked) + len(threads) <= count:
            picked.extend(threads)
        else:
            spare.extend(threads)
    leftovers = [cpu for threads in partial for cpu in threads] + spare
    return picked + leftovers[:count - len(picked)]


def _nodes_text(nodes):
    nodes = sorted(nodes)
    if len(nodes) == 1:
        return 'node %d' % nodes[0]
    return 'nodes %s' % ','.join(map(str, nodes))


def _local_to(named, with_nodes=False):
    names = [(name, node) for name, node in named if name]
    if not names:
        return 'local to its %s' % ('device' if len(named) == 1 else
                                    '%d devices' % len(named))
    if with_nodes:
        return 'local to %s' % ', '.join('%s (node %s)' % (name, node)
                                         for name, node in names)
    return 'local to %s' % ', '.join(name for name, _ in names)


def format_cpus(cpus):
    """``{0, 1, 2, 3, 8, 9}`` -> ``'0-3,8-9'``."""
    ranges = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ','.join('%d' % a if a == b else '%d-%d' % (a, b)
                    for a, b in ranges)
