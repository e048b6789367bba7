"""Which devices of a locality group a guest gets.

Placement allocated *count* devices from one group's provider; the host
picks which: free, healthy, assignable devices only, the best-linked set of
them that leaves the rest least fragmented (NVLink, then one PCIe switch,
...; see :func:`cyborg_nova.policy.topology.choose`), then the least
loaded, then by address so the choice is stable.

vGPU parents are shared (:func:`pick_vgpu_parents`): a guest keeps the
parents its mdevs are on, and each further vGPU goes to the parent where
it is expected to share least, by the load its driver measured.
"""

import collections

from cyborg_nova import errors
from cyborg_nova.policy import topology


def free_devices(devices, in_use):
    return [d for d in devices
            if d.address not in in_use and d.healthy and d.assignable]


def pick(devices, count, in_use, group_name='',
         link_policy=topology.BEST_EFFORT):
    """*count* devices from *devices* (one group) not in *in_use*.

    Returned least loaded first, then by address.  With *link_policy*
    ``strict`` the devices lie in one link island (one NVLink island or
    one PCIe switch), or NoFreeDevice is raised.
    """
    free = free_devices(devices, in_use)
    if len(free) < count:
        raise errors.NoFreeDevice(
            'locality group %s has %d free healthy device(s) but Placement '
            'allocated %d: the host and Placement disagree (a device '
            'vanished, turned unhealthy or is held by a guest Placement '
            'does not know); the next inventory update corrects Placement, '
            'retry the request then' % (group_name, len(free), count))
    chosen = topology.choose(free, count, link_policy=link_policy)
    if chosen is None:
        raise errors.NoFreeDevice(
            'locality group %s has %d free healthy device(s) but at most %d '
            'in one link island (one NVLink island or one PCIe switch), and '
            'the request asks for %d there (accelerator:link_policy=strict); '
            'the scheduler saw an older state of this host: retry the '
            'request, or use accelerator:link_policy=best_effort to accept '
            'devices from several islands'
            % (group_name, len(free), topology.largest_free_island(free),
               count))
    return chosen


def pick_vgpu_parents(parents, count, free, own=None, group_name=''):
    """*count* vGPU parents of one group, with repeats, for one instance.

    *parents* are the group's parent Devices; *free* maps a parent's
    address to the vGPUs left on it for this instance (parents absent or
    at 0 are full, unhealthy or not assignable); *own* counts the vGPUs
    the instance holds on each parent already (a rebuild, a hard reboot):
    those are kept first.  Each further vGPU goes to the parent with the
    lowest expected load: the load its driver measured (0 when unknown)
    plus, for each vGPU this pick already put there, its time slice
    (100 / the parent's vGPU capacity); then the parent with most vGPUs
    left, then by address.  So new guests land on idle GPUs, and the
    vGPUs of one request spread when parents are equally busy.  Raises
    NoFreeDevice when the group has fewer than *count* vGPUs left.
    """
    by_address = {d.address: d for d in parents}
    left = {a: n for a, n in free.items() if a in by_address and n > 0}
    picked = []
    for address in sorted(own or {}):
        for _ in range((own or {})[address]):
            if len(picked) < count and left.get(address, 0) > 0:
                picked.append(by_address[address])
                left[address] -= 1
    added = collections.Counter()

    def expected_load(address):
        dev = by_address[address]
        util = dev.utilization
        load = util.load if util is not None else None
        slice_ = 100.0 / max(1, int(dev.capabilities.get(
            'vgpu_capacity') or 1))
        return ((load if load is not None else 0.0) +
                slice_ * added[address], -left[address], address)

    while len(picked) < count:
        candidates = [a for a in left if left[a] > 0]
        if not candidates:
            raise errors.NoFreeDevice(
                'locality group %s has %d free vGPU(s) but Placement '
                'allocated %d: the host and Placement disagree (an mdev '
                'was created outside Nova, or a parent turned unhealthy); '
                'the next inventory update corrects Placement, retry the '
                'request then' % (group_name, len(picked), count))
        best = min(candidates, key=expected_load)
        picked.append(by_address[best])
        left[best] -= 1
        added[best] += 1
    return picked
