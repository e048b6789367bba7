"""How well the devices of one host are linked, and which set of them a
multi-device request gets.

Pure: plain :class:`~cyborg_nova.device.Device` objects in, plain data out.
What is read from a device:

* ``capabilities['nvlink_peers']`` and ``capabilities['nvlink_island']``
  (set by the NVIDIA driver, see :func:`cyborg_nova.drivers.nvidia.
  nvlink_topology`; GPUs on one NVSwitch are each other's peers);
* ``pcie_path``: the root complex (``'pci0000:80'``) when known, then the
  bridges above the device, root port first;
* ``numa_node``.

Link levels between two devices, best first, as ``nvidia-smi topo -m`` and
NVIDIA's go-gpuallocator rank them:

============  ==========================================================
NVLINK        NVLink peers (directly, or through an NVSwitch)
PCIE_SWITCH   behind one PCIe switch: they share a bridge below the root
              port
HOST_BRIDGE   on one root port or one root complex
NUMA_NODE     on one NUMA node, under different root complexes
CROSS_SOCKET  on different NUMA nodes (or a node is unknown)
============  ==========================================================

A *link island* is a set of devices the ``strict`` link policy accepts:
all in one NVLink island, or all behind one PCIe switch.  One device is an
island of its own.

:func:`choose` picks *k* of the free devices, in this order of concern:

1. the set lies in one link island when any such set exists;
2. its worst link, then the sum of its links, is as good as possible
   (NVLink first; among NVLink peers, PCIe locality decides);
3. what stays free is least fragmented: compared level by level (NVLink,
   then PCIe switch, root complex, NUMA node), the groups of still-linked
   free devices are as large as possible, so a one-GPU request takes a lone
   GPU rather than break an NVLink pair, and a two-GPU request takes a free
   pair rather than split a quad (go-gpuallocator's best-effort policy);
4. the least loaded set, then the lowest addresses (a stable choice).
"""

import itertools
import math

NVLINK = 0
PCIE_SWITCH = 1
HOST_BRIDGE = 2
NUMA_NODE = 3
CROSS_SOCKET = 4

LEVEL_NAMES = {
    NVLINK: 'NVLink',
    PCIE_SWITCH: 'one PCIe switch',
    HOST_BRIDGE: 'one PCIe root complex',
    NUMA_NODE: 'one NUMA node',
    CROSS_SOCKET: 'across NUMA nodes',
}

BEST_EFFORT = 'best_effort'
STRICT = 'strict'

#: Above this many sets of k devices, :func:`choose` grows sets greedily
#: from every device instead of scoring every set (C(8, 4) = 70 and
#: C(12, 6) = 924 are scored in full; C(16, 4) = 1820 is not).
MAX_EXHAUSTIVE_SETS = 1000

#: Levels at which fragmentation is measured, best first: (use the NVLink
#: aware level or the PCIe-only one, highest level that still links).
_FRAGMENTATION_LEVELS = ((True, NVLINK), (False, PCIE_SWITCH),
                         (False, HOST_BRIDGE), (False, NUMA_NODE))


# -- one device ------------------------------------------------------------

def _split_path(dev):
    """(root complex or None, bridges from the root port down)."""
    path = tuple(dev.pcie_path or ())
    if path and path[0].startswith('pci'):
        return path[0], path[1:]
    return None, path


def switch_of(dev):
    """The top bridge below the device's root port (the upstream port of
    its PCIe switch), or None when the device sits on a root port or its
    path is unknown."""
    _, bridges = _split_path(dev)
    return bridges[1] if len(bridges) > 1 else None


def nvlink_island_of(dev):
    return (dev.capabilities or {}).get('nvlink_island')


def _peers(dev):
    return (dev.capabilities or {}).get('nvlink_peers') or ()


# -- two devices -----------------------------------------------------------

def pcie_level(a, b):
    """The link level of two devices ignoring NVLink."""
    root_a, bridges_a = _split_path(a)
    root_b, bridges_b = _split_path(b)
    shared = _shared_prefix(bridges_a, bridges_b)
    if shared > 1:
        return PCIE_SWITCH
    if shared == 1 or (root_a is not None and root_a == root_b):
        return HOST_BRIDGE
    if a.numa_node is not None and a.numa_node == b.numa_node:
        return NUMA_NODE
    return CROSS_SOCKET


def link_level(a, b):
    """The link level of two devices (see the module's table)."""
    if b.address in _peers(a) or a.address in _peers(b):
        return NVLINK
    return pcie_level(a, b)


def _shared_prefix(x, y):
    n = 0
    for p, q in zip(x, y):
        if p != q:
            break
        n += 1
    return n


def _shared_depth(a, b):
    """How many PCIe elements (root complex, bridges) two paths share: the
    deeper, the closer (PIX before PXB)."""
    return _shared_prefix(tuple(a.pcie_path or ()), tuple(b.pcie_path or ()))


# -- islands ---------------------------------------------------------------

def islands(devices):
    """The link islands of more than one device among *devices*:
    ``{('nvlink', island) or ('pcie_switch', bridge): [addresses]}``."""
    found = {}
    for dev in devices:
        island = nvlink_island_of(dev)
        if island is not None:
            found.setdefault(('nvlink', island), []).append(dev.address)
        switch = switch_of(dev)
        if switch is not None:
            found.setdefault(('pcie_switch', switch), []).append(dev.address)
    return {key: sorted(members) for key, members in found.items()
            if len(members) > 1}


def in_one_island(devices):
    """Whether *devices* all lie in one link island (the strict policy)."""
    devices = list(devices)
    if len(devices) <= 1:
        return True
    for key in (nvlink_island_of, switch_of):
        values = {key(d) for d in devices}
        if len(values) == 1 and None not in values:
            return True
    return False


def largest_free_island(free_devices):
    """The most devices of *free_devices* that lie in one link island: how
    many devices a strict request may take (0 when none is free)."""
    free_devices = list(free_devices)
    best = 1 if free_devices else 0
    for members in islands(free_devices).values():
        best = max(best, len(members))
    return best


# -- choosing a set ----------------------------------------------------------

class _Links:
    """Levels between every two of a list of devices, computed once."""

    def __init__(self, devices):
        self.devices = devices
        n = len(devices)
        self.level = [[NVLINK] * n for _ in range(n)]
        self.pcie = [[NVLINK] * n for _ in range(n)]
        self.depth = [[0] * n for _ in range(n)]
        for i, j in itertools.combinations(range(n), 2):
            a, b = devices[i], devices[j]
            self.level[i][j] = self.level[j][i] = link_level(a, b)
            self.pcie[i][j] = self.pcie[j][i] = pcie_level(a, b)
            self.depth[i][j] = self.depth[j][i] = _shared_depth(a, b)
        self.island = [(nvlink_island_of(d), switch_of(d)) for d in devices]
        self._adjacency = None

    def in_island(self, chosen):
        if len(chosen) <= 1:
            return True
        for kind in (0, 1):
            values = {self.island[i][kind] for i in chosen}
            if len(values) == 1 and None not in values:
                return True
        return False

    def quality(self, chosen):
        """Lower is better: (not in one island, worst level, level sum,
        worst PCIe level, PCIe level sum, minus shared PCIe depth)."""
        worst = total = pworst = ptotal = depth = 0
        for i, j in itertools.combinations(chosen, 2):
            level, pcie = self.level[i][j], self.pcie[i][j]
            worst = max(worst, level)
            pworst = max(pworst, pcie)
            total += level
            ptotal += pcie
            depth += self.depth[i][j]
        return (not self.in_island(chosen), worst, total, pworst, ptotal,
                -depth)

    def fragmentation(self, rest):
        """Lower is better: per level, the sizes of the groups of linked
        devices left free, largest first, negated."""
        if self._adjacency is None:
            self._adjacency = [
                [sum(1 << j for j in range(len(self.devices))
                     if (self.level if aware else self.pcie)[i][j] <=
                     threshold) for i in range(len(self.devices))]
                for aware, threshold in _FRAGMENTATION_LEVELS]
        mask = 0
        for i in rest:
            mask |= 1 << i
        return tuple(tuple(sorted(-size for size in _component_sizes(
            mask, adjacency))) for adjacency in self._adjacency)

    def load(self, chosen):
        total = 0.0
        for i in chosen:
            util = self.devices[i].utilization
            load = util.load if util is not None else None
            total += load if load is not None else 0.0
        return total


def _component_sizes(mask, adjacency):
    """Sizes of the connected parts of the devices in bit *mask*, where
    ``adjacency[i]`` is the bit mask of the devices linked to device i."""
    sizes = []
    while mask:
        part = frontier = mask & -mask
        while frontier:
            reach = 0
            while frontier:
                low = frontier & -frontier
                reach |= adjacency[low.bit_length() - 1]
                frontier ^= low
            frontier = reach & mask & ~part
            part |= frontier
        sizes.append(bin(part).count('1'))
        mask &= ~part
    return sizes


def _greedy_sets(links, count, strict):
    """Sets grown from each device by adding the best-linked one, within
    each island the device is in (and, unless strict, the whole host)."""
    n = len(links.devices)
    pools = []
    if not strict:
        pools.append(tuple(range(n)))
    by_island = {}
    for i, (nvlink, switch) in enumerate(links.island):
        for key in (('nvlink', nvlink), ('pcie_switch', switch)):
            if key[1] is not None:
                by_island.setdefault(key, []).append(i)
    pools.extend(tuple(m) for m in by_island.values() if len(m) >= count)
    seen = set()
    for pool in pools:
        for seed in pool:
            chosen = [seed]
            left = [i for i in pool if i != seed]
            while len(chosen) < count:
                best = min(left, key=lambda c: (
                    max(links.level[c][i] for i in chosen),
                    sum(links.level[c][i] for i in chosen),
                    sum(links.pcie[c][i] for i in chosen), c))
                chosen.append(best)
                left.remove(best)
            key = tuple(sorted(chosen))
            if key not in seen:
                seen.add(key)
                yield key


def choose(free_devices, count, link_policy=BEST_EFFORT):
    """The best set of *count* devices among *free_devices*.

    Returns the chosen devices, least loaded first then by address (the
    order of the old least-loaded pick), or None when there are too few
    free devices, or when *link_policy* is ``strict`` and no *count* of
    them lie in one link island.
    """
    devices = sorted(free_devices, key=lambda d: d.address)
    if count <= 0:
        return []
    if len(devices) < count:
        return None
    strict = link_policy == STRICT
    links = _Links(devices)
    everyone = frozenset(range(len(devices)))
    if math.comb(len(devices), count) <= MAX_EXHAUSTIVE_SETS:
        sets = itertools.combinations(range(len(devices)), count)
    else:
        sets = _greedy_sets(links, count, strict)
    # Quality first, over every set; fragmentation only among the best.
    best_quality, finalists = None, []
    for chosen in sets:
        quality = links.quality(chosen)
        if strict and quality[0]:
            continue
        if best_quality is None or quality < best_quality:
            best_quality, finalists = quality, [chosen]
        elif quality == best_quality:
            finalists.append(chosen)
    if not finalists:
        return None
    best = min(finalists, key=lambda chosen: (
        links.fragmentation(sorted(everyone - set(chosen))),
        links.load(chosen), chosen))
    return sorted((devices[i] for i in best), key=_load_then_address)


def _load_then_address(dev):
    load = dev.utilization.load if dev.utilization else None
    return (load if load is not None else 0.0, dev.address)


def worst_level(devices):
    """The worst link level among *devices* (NVLINK for one device)."""
    worst = NVLINK
    for a, b in itertools.combinations(devices, 2):
        worst = max(worst, link_level(a, b))
    return worst


def describe(devices):
    """A few words on how *devices* are linked, for logs."""
    devices = list(devices)
    if len(devices) <= 1:
        return 'one device'
    return '%s%s' % (LEVEL_NAMES[worst_level(devices)],
                     ', one link island' if in_one_island(devices) else
                     ', not one link island')
