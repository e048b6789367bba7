"""Which devices of a locality group a guest gets.

Placement allocated *count* devices from one group's provider; the host
picks which.  Free, healthy, assignable devices only; the least loaded
first, then by address so the choice is stable.
"""

from cyborg_nova import errors


def free_devices(devices, in_use):
    return [d for d in devices
            if d.address not in in_use and d.healthy and d.assignable]


def pick(devices, count, in_use, group_name=''):
    """*count* devices from *devices* (one group) not in *in_use*."""
    free = free_devices(devices, in_use)
    if len(free) < count:
        raise errors.NoFreeDevice(
            'locality group %s has %d free healthy device(s) but Placement '
            'allocated %d: the host and Placement disagree (a device '
            'vanished, turned unhealthy or is held by a guest Placement '
            'does not know); the next inventory update corrects Placement, '
            'retry the request then' % (group_name, len(free), count))

    def order(dev):
        load = dev.utilization.load if dev.utilization else None
        return (load if load is not None else 0.0, dev.address)

    return sorted(free, key=order)[:count]
