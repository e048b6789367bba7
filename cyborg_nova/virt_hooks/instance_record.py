"""Which devices an instance holds, recorded on the instance itself.

The record lives in ``instance.system_metadata``, one key per compute node
(``cyborg_nova_devices:<nodename>`` = comma-separated PCI addresses), so a
resize or migration keeps the source host's devices known until the move is
confirmed or reverted, and every rebuild of the guest XML on a host (hard
reboot, host reboot, rebuild, unshelve) puts back what that host gave it.

:func:`instance_lock` is the lock that nova-compute's accelerator work and
``cyborg-nova attach/detach`` both take for one instance: an external
(file) lock, since the command runs in another process.

A resize to the same host needs two records on one node for a while: the
devices of the new flavor (the node's record) and those of the old one,
kept for a revert until the resize is confirmed (:func:`stash`,
:func:`take_stash`, under ``cyborg_nova_resize_source:<nodename>``).
"""

from oslo_concurrency import lockutils

PREFIX = 'cyborg_nova_devices:'
STASH_PREFIX = 'cyborg_nova_resize_source:'


def key(nodename):
    return PREFIX + nodename


def devices_on(instance, nodename):
    """Addresses recorded for *instance* on *nodename*."""
    value = instance.system_metadata.get(key(nodename), '')
    return [a for a in value.split(',') if a]


def record(instance, nodename, addresses):
    """Record (or, with no addresses, forget) the instance's devices on a
    node.  The caller saves the instance (Nova's compute manager saves it
    after every operation that calls the driver)."""
    if addresses:
        instance.system_metadata[key(nodename)] = ','.join(addresses)
    else:
        instance.system_metadata.pop(key(nodename), None)


def catch_up(instance, nodename, fresh_metadata):
    """Copy the node's record from *fresh_metadata* (the instance's
    ``system_metadata`` as the database holds it now) into *instance*,
    loaded before ``cyborg-nova attach/detach`` changed it in another
    process; True when it differed.  Taken under :func:`instance_lock`,
    so nothing changes it meanwhile."""
    name = key(nodename)
    fresh = fresh_metadata.get(name)
    if fresh == instance.system_metadata.get(name):
        return False
    if fresh is None:
        instance.system_metadata.pop(name, None)
    else:
        instance.system_metadata[name] = fresh
    return True


def nodes_of(instance):
    """Nodes with a device record for *instance*."""
    return sorted(k[len(PREFIX):] for k in instance.system_metadata
                  if k.startswith(PREFIX))


def stash(instance, nodename, addresses):
    """Keep the devices of a same-host resize's source for a revert."""
    instance.system_metadata[STASH_PREFIX + nodename] = ','.join(addresses)


def stashed(instance, nodename):
    """The stashed addresses, or None when no same-host resize is pending
    on *nodename*."""
    value = instance.system_metadata.get(STASH_PREFIX + nodename)
    if value is None:
        return None
    return [a for a in value.split(',') if a]


def take_stash(instance, nodename):
    """Remove and return the stash (None when there is none)."""
    addresses = stashed(instance, nodename)
    instance.system_metadata.pop(STASH_PREFIX + nodename, None)
    return addresses


def instance_lock(instance_uuid, lock_path=None):
    """The per-instance lock shared with ``cyborg-nova attach/detach``."""
    return lockutils.lock('cyborg-nova-instance-%s' % instance_uuid,
                          external=True, lock_path=lock_path)
