"""Which devices of a locality group a guest gets.

Placement allocated *count* devices from one group's provider; the host
picks which: free, healthy, assignable devices only, the best-linked set of
them that leaves the rest least fragmented (NVLink, then one PCIe switch,
...; see :func:`cyborg_nova.policy.topology.choose`), then the least
loaded, then by address so the choice is stable.
"""

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
