"""Placement inventory of a host's accelerators: devices grouped by locality.

One resource provider per *locality group*: devices of one resource class
and one model on one NUMA node.  Its inventory total is the number of
devices in the group, so a request for ``PGPU:2`` is one request group that
Placement answers with one candidate per group that has two free devices
(one provider per device would need one request group per device and make
Placement enumerate every ordering: 8!/(8-k)! candidates per host).  The
device is picked on the host at spawn, as Nova does for vGPUs.

Unhealthy devices stay in the inventory and are *reserved*, so a device in
use never vanishes under its guest; a device that is not assignable is not
offered at all unless a guest holds it.

A VGPU group counts vGPUs, not devices: its parents host one mdev type (a
group per type, model and NUMA node), its total is the sum of its
parents' ``vgpu_capacity`` (the instances of that mdev type), several
guests share one parent, and what is in use is the number of mdevs on the
parents (``vgpu_used``, or the count the caller gives).
"""

import collections
import dataclasses

import os_resource_classes as orc
import uuid

from cyborg_nova.policy import classify
from cyborg_nova.policy import topology

#: Namespace of the provider UUIDs (uuid5 of root provider uuid + key), so
#: that the compute host and the scheduler agree on them without talking.
PROVIDER_NAMESPACE = uuid.UUID('6f0f6d1c-3c5e-4b8a-9a57-7c1e0c7a2b11')


@dataclasses.dataclass(frozen=True)
class GroupKey:
    resource_class: str
    vendor_id: str
    product_id: str
    numa_node: int | None
    #: vGPU parents: the mdev type they host (one provider per type, so a
    #: flavor's trait:CUSTOM_MDEV_TYPE_* gets that type); '' otherwise.
    mdev_type: str = ''

    @property
    def suffix(self):
        """The provider name's suffix, unique on a host."""
        return '%s_%s_%s%s_NUMA%s' % (
            self.resource_class, self.vendor_id, self.product_id,
            '_' + self.mdev_type if self.mdev_type else '',
            'X' if self.numa_node is None else self.numa_node)


@dataclasses.dataclass
class LocalityGroup:
    key: GroupKey
    devices: list            # addresses, sorted
    traits: frozenset
    reserved: int            # unhealthy or no longer assignable, in use
    in_use: int
    load: float | None       # mean load of the group's devices, percent
    #: Most free devices in one link island (NVLink island or PCIe switch):
    #: what a request with ``accelerator:link_policy=strict`` may take.
    #: None: not known (a group built by older code).
    largest_free_island: int | None = None
    #: Units the group offers when they are not its devices (VGPU: the
    #: vGPU capacity of its parents); None: one unit per device.
    capacity: int | None = None

    @property
    def total(self):
        if self.capacity is not None:
            return self.capacity
        return len(self.devices)

    @property
    def free(self):
        return max(0, self.total - self.reserved - self.in_use)

    def provider_name(self, nodename):
        return '%s_%s' % (nodename, self.key.suffix)

    def provider_uuid(self, root_uuid):
        return provider_uuid(root_uuid, self.key.suffix)


def provider_uuid(root_uuid, suffix):
    return str(uuid.uuid5(PROVIDER_NAMESPACE, '%s/%s' % (root_uuid, suffix)))


def group_key(device):
    return GroupKey(device.resource_class, device.vendor_id,
                    device.product_id, device.numa_node,
                    str(device.capabilities.get('mdev_type') or '')
                    if is_shared(device) else '')


def is_shared(device):
    """Whether guests share the device in units (a vGPU parent)."""
    return device.resource_class == orc.VGPU


def vgpu_capacity(device):
    return int(device.capabilities.get('vgpu_capacity') or 0)


def locality_groups(devices, in_use=(), vgpus_in_use=None):
    """Group the devices a host may offer.

    *in_use* holds the addresses guests hold now.  *vgpus_in_use* maps a
    vGPU parent's address to the vGPUs guests hold on it (default: the
    parent's ``vgpu_used`` capability, the mdevs sysfs shows).  A device
    is offered when it is assignable, or when a guest holds it.  A free
    device that is unhealthy or no longer assignable is *reserved*; a held
    one is counted by its guest's allocation alone (reserving it too would
    take a second slot of the group and keep a healthy free device from
    being scheduled), and becomes reserved when its guest lets it go.
    """
    in_use = set(in_use)
    vgpus = collections.Counter(vgpus_in_use or {})

    def vgpus_used(dev):
        if vgpus_in_use is None:
            return int(dev.capabilities.get('vgpu_used') or 0)
        return vgpus[dev.address]

    grouped = {}
    for dev in devices:
        held = dev.address in in_use or (is_shared(dev) and vgpus_used(dev))
        if not dev.assignable and not held:
            continue
        grouped.setdefault(group_key(dev), []).append(dev)
    groups = []
    for key in sorted(grouped, key=lambda k: k.suffix):
        devs = sorted(grouped[key], key=lambda d: d.address)
        traits = set()
        for d in devs:
            traits |= set(d.traits)
        traits.add(classify.custom_name('ACCEL_GROUP'))
        if key.resource_class == orc.VGPU:
            groups.append(_vgpu_group(key, devs, traits, vgpus_used))
            continue
        reserved = sum(1 for d in devs if d.address not in in_use
                       and (not d.healthy or not d.assignable))
        loads = [d.utilization.load for d in devs
                 if d.utilization is not None
                 and d.utilization.load is not None]
        free = [d for d in devs if d.address not in in_use
                and d.healthy and d.assignable]
        groups.append(LocalityGroup(
            key=key,
            devices=[d.address for d in devs],
            traits=frozenset(traits),
            reserved=reserved,
            in_use=sum(1 for d in devs if d.address in in_use),
            load=(sum(loads) / len(loads)) if loads else None,
            largest_free_island=topology.largest_free_island(free)))
    return groups


def _vgpu_group(key, devs, traits, vgpus_used):
    """A group of vGPU parents: units are vGPUs; an unhealthy or no longer
    assignable parent reserves what its guests do not use."""
    used = {d.address: min(vgpus_used(d), vgpu_capacity(d)) for d in devs}
    usable = {d.address: d.healthy and d.assignable for d in devs}
    free_on = [vgpu_capacity(d) - used[d.address] for d in devs
               if usable[d.address]]
    loads = [d.utilization.load for d in devs
             if d.utilization is not None and d.utilization.load is not None]
    return LocalityGroup(
        key=key,
        devices=[d.address for d in devs],
        traits=frozenset(traits),
        reserved=sum(vgpu_capacity(d) - used[d.address] for d in devs
                     if not usable[d.address]),
        in_use=sum(used.values()),
        load=(sum(loads) / len(loads)) if loads else None,
        # The vGPUs of one request live on one parent at best.
        largest_free_island=max(free_on, default=0),
        capacity=sum(vgpu_capacity(d) for d in devs))


def inventory_record(group):
    """The Placement inventory record of a group's provider."""
    return {
        'total': group.total,
        'reserved': min(group.reserved, group.total),
        'min_unit': 1,
        'max_unit': group.total,
        'step_size': 1,
        'allocation_ratio': 1.0,
    }
