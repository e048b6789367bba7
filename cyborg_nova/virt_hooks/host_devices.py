"""The accelerators of one compute host, and which guest holds which.

What guests hold is read from libvirt (the hostdevs in every defined
domain), so it is true after a nova-compute restart without any state of
our own; devices picked for a spawn in progress are held in memory until
their domain exists (or, for a hard reboot or a rebuild, until their
domain is defined again), and the source devices of a resize to the same
host are held until the resize is confirmed or reverted.  Discovery runs
the enabled drivers (see :mod:`cyborg_nova.discovery`) and is refreshed at
every periodic resource update, so a device that vanished or turned
unhealthy is seen within one period.

vGPU parents (resource class VGPU) are shared: a guest holding one of its
mdevs is listed with the parent's address once per mdev, a parent is picked
as long as it has vGPUs left, and the same parent may be picked several
times for one instance (its mdevs then get indexes 0, 1, ...).
"""

import collections
import logging
import threading

from cyborg_nova import discovery
from cyborg_nova.drivers import mdev as mdev_driver
from cyborg_nova import errors
from cyborg_nova.policy import device_pick
from cyborg_nova.policy import inventory
from cyborg_nova.policy import request as request_mod
from cyborg_nova.virt_hooks import guest_devices

LOG = logging.getLogger(__name__)


class HostDevices(object):

    def __init__(self, conf, nvml=None, drivers=None, sysfs_root=None):
        self.conf = conf
        self._nvml = nvml
        self._drivers = drivers
        self._sysfs_root = sysfs_root or conf.accelerator.sysfs_root
        self._lock = threading.RLock()
        self._pending = {}        # instance uuid -> [address], mid-spawn
        self._reserved = {}       # instance uuid -> [address], resize source
        self.result = None        # last discovery.Discovery

    @property
    def sysfs_root(self):
        """The sysfs tree this host's devices are read from."""
        return self._sysfs_root

    # -- discovery -------------------------------------------------------

    def refresh(self):
        """Rediscover the host's devices; return the Discovery."""
        ctx = discovery.make_context(self.conf, sysfs_root=self._sysfs_root,
                                     nvml=self._nvml)
        result = discovery.discover(ctx, drivers=self._drivers)
        if self._drivers is None:
            # Keep the loaded driver objects: reloading entry points at
            # every periodic update is wasted work.
            self._drivers = dict(result.drivers)
        for name, why in sorted(result.failures.items()):
            LOG.warning('Accelerator driver %s skipped: %s', name, why)
        with self._lock:
            self.result = result
        return result

    @property
    def devices(self):
        if self.result is None:
            self.refresh()
        return self.result.devices

    def tuning_drivers(self):
        """The enabled tuning drivers (they own no devices)."""
        if self.result is None:
            self.refresh()
        return self.result.tuning_drivers

    def by_address(self):
        return {d.address: d for d in self.devices}

    def driver_for(self, device):
        return self.result.drivers.get(device.driver)

    # -- who holds what --------------------------------------------------

    def held(self, guests):
        """Addresses held by guests or by spawns in progress.

        *guests* maps instance uuid -> addresses found in its libvirt
        domain.
        """
        with self._lock:
            addresses = set()
            for addrs in guests.values():
                addresses.update(addrs)
            for addrs in self._pending.values():
                addresses.update(addrs)
            for addrs in self._reserved.values():
                addresses.update(addrs)
            return addresses

    def vgpus_held(self, guests):
        """``{parent address: vGPUs}`` held by guests (their mdevs, as
        :meth:`mdev_parent` maps them), by spawns in progress and by
        resize reservations.  An instance both in a guest and in a claim
        (a hard reboot's hold) counts once."""
        shared = {d.address for d in self.devices if inventory.is_shared(d)}
        per_instance = {}
        with self._lock:
            for source in (guests, self._pending, self._reserved):
                for uuid, addrs in source.items():
                    mine = collections.Counter(a for a in addrs
                                               if a in shared)
                    per_instance[uuid] = per_instance.get(
                        uuid, collections.Counter()) | mine
        return sum(per_instance.values(), collections.Counter())

    def _vgpus_in_use(self, guests):
        # What the kernel shows (mdevs on the parent) or what the guests
        # and claims say, whichever is more: neither may be over-offered.
        counted = self.vgpus_held(guests)
        return {d.address: max(counted[d.address], int(
            d.capabilities.get('vgpu_used') or 0))
            for d in self.devices if inventory.is_shared(d)}

    def groups(self, guests):
        return inventory.locality_groups(
            self.devices, self.held(guests),
            vgpus_in_use=self._vgpus_in_use(guests))

    def vgpus_free(self, guests):
        """``{parent address: vGPUs left}`` of the healthy, assignable
        vGPU parents."""
        used = self._vgpus_in_use(guests)
        return {d.address: max(0, inventory.vgpu_capacity(d) -
                               used[d.address])
                for d in self.devices
                if inventory.is_shared(d) and d.healthy and d.assignable}

    def mdev_parent(self, instance_uuid, mdev):
        """The address of the vGPU parent of an instance's mdev (UUID
        *mdev*): where sysfs links it, else (a host reboot removed it) the
        parent its UUID was derived from; None when it is not ours."""
        parents = [d for d in self.devices if inventory.is_shared(d)]
        drivers = {self.driver_for(d) for d in parents}
        for driver in drivers:
            parent = driver.parent_of(mdev)
            if parent:
                return parent
        for dev in parents:
            for index in range(max(1, inventory.vgpu_capacity(dev))):
                if mdev_driver.mdev_uuid(instance_uuid, dev.address,
                                         index) == mdev:
                    return dev.address
        return None

    def addresses_in(self, guest):
        """Addresses a libvirt guest (``nova.virt.libvirt.guest.Guest``)
        holds: its PCI devices, and the vGPU parent of each of its mdevs,
        once per mdev."""
        parents = (self.mdev_parent(guest.uuid, mdev)
                   for mdev in guest_devices.mdev_uuids_in(guest))
        return (guest_devices.pci_addresses_in(guest) +
                [p for p in parents if p])

    def groups_by_provider(self, root_uuid):
        """``{provider uuid: (suffix, [Device])}`` of every group."""
        by_key = {}
        for dev in self.devices:
            by_key.setdefault(inventory.group_key(dev), []).append(dev)
        return {inventory.provider_uuid(root_uuid, key.suffix):
                (key.suffix, devs) for key, devs in by_key.items()}

    # -- claims ----------------------------------------------------------

    def claim(self, instance_uuid, allocations, root_uuid, guests,
              keep=(), link_policy='best_effort'):
        """Pick the devices Placement allocated to an instance on this host.

        *allocations* is ``{provider uuid: {'resources': {rc: n}}}``.
        Devices the instance already holds (in its domain, or *keep*: what
        its record names for a rebuild) are picked first when they are in
        an allocated group; devices held by other guests, by other claims
        in progress, or reserved for a resize (:meth:`reserve`, the
        instance's own resize source included) never are.  The picked
        addresses are held until :meth:`settle` or :meth:`release`.
        Returns the devices, in a stable order.  Raises NoFreeDevice when
        the host cannot honour the allocation (nothing is held then).

        *guests* (``{instance uuid: [address]}``) may be a callable that
        lists them: it is then called under the claim lock, so a spawn that
        settles between the listing and the pick cannot lose its devices to
        this one.  *link_policy* is the flavor's ``accelerator:link_policy``.
        """
        groups = self.groups_by_provider(root_uuid)
        with self._lock:
            if callable(guests):
                guests = guests()
            self._pending.pop(instance_uuid, None)
            held = self.held({u: a for u, a in guests.items()
                              if u != instance_uuid})
            own = (set(guests.get(instance_uuid, ())) | set(keep)) - held
            chosen = []
            for rp_uuid, alloc in sorted((allocations or {}).items()):
                if rp_uuid not in groups:
                    continue
                suffix, devs = groups[rp_uuid]
                count = sum(alloc.get('resources', {}).values())
                if devs and inventory.is_shared(devs[0]):
                    chosen.extend(self._pick_vgpus(
                        instance_uuid, devs, count, guests, keep, chosen,
                        suffix))
                    continue
                # Devices the guest already holds (a rebuild, a retried
                # spawn) count first.
                mine = [d for d in devs if d.address in own][:count]
                rest = device_pick.pick(
                    devs, count - len(mine),
                    held | own | {d.address for d in chosen},
                    group_name=suffix, link_policy=link_policy)
                chosen.extend(mine + rest)
            unknown = [rp for rp, alloc in (allocations or {}).items()
                       if rp not in groups and _is_accelerator(alloc)]
            if unknown:
                raise errors.NoFreeDevice(
                    'Placement allocated accelerators from provider(s) %s '
                    'that this host does not report (a device group '
                    'vanished); the next inventory update corrects '
                    'Placement, retry the request then'
                    % ', '.join(sorted(unknown)))
            self._pending[instance_uuid] = [d.address for d in chosen]
            return chosen

    def _pick_vgpus(self, instance_uuid, parents, count, guests, keep,
                    chosen, group_name):
        """*count* vGPU parents (with repeats) of one group for an
        instance (see :func:`device_pick.pick_vgpu_parents`).  Called under
        the claim lock."""
        others = collections.Counter()
        for uuid, addrs in list(guests.items()) + list(
                self._pending.items()) + list(self._reserved.items()):
            if uuid != instance_uuid:
                others.update(addrs)
        own = (collections.Counter(guests.get(instance_uuid, ())) |
               collections.Counter(keep))
        taken = collections.Counter(d.address for d in chosen)
        free = {dev.address: (inventory.vgpu_capacity(dev) -
                              others[dev.address] - taken[dev.address])
                for dev in parents if dev.healthy and dev.assignable}
        return device_pick.pick_vgpu_parents(parents, count, free, own,
                                             group_name=group_name)

    def pending(self, instance_uuid):
        with self._lock:
            return list(self._pending.get(instance_uuid, ()))

    def spawn_claims(self):
        """``{instance uuid: (address, ...)}`` of claims of spawns and
        moves in progress (not the holds of ``cyborg-nova attach``)."""
        with self._lock:
            return {uuid: tuple(addrs)
                    for uuid, addrs in self._pending.items()
                    if addrs and not uuid.startswith('attach:')}

    def hold(self, instance_uuid, addresses):
        """Hold an instance's devices while its domain is re-created (hard
        reboot, rebuild): until :meth:`settle` or the next :meth:`claim`."""
        with self._lock:
            self._pending[instance_uuid] = list(addresses)

    def settle(self, instance_uuid):
        """The instance's domain now holds its devices."""
        with self._lock:
            self._pending.pop(instance_uuid, None)

    release = settle

    def reserve(self, instance_uuid, addresses):
        """Hold the source devices of a resize to this same host (the
        resize's domain replaced the one that held them) until
        :meth:`unreserve`; Placement holds them for the migration."""
        with self._lock:
            if addresses:
                self._reserved[instance_uuid] = list(addresses)
            else:
                self._reserved.pop(instance_uuid, None)

    def unreserve(self, instance_uuid):
        with self._lock:
            self._reserved.pop(instance_uuid, None)

    # -- attach to and detach from a running guest (cyborg_nova.attach) --

    def hold_for_attach(self, instance_uuid, addresses):
        """Hold *addresses* while they are being attached to a running
        guest, so that a spawn in this process does not pick them before
        they are in the guest's domain.  Kept apart from the instance's
        spawn claim: :meth:`pending` does not return them and
        :meth:`claim` does not drop them; :meth:`held` counts them."""
        with self._lock:
            self._pending[_attach_key(instance_uuid)] = list(addresses)

    def drop_attach_hold(self, instance_uuid):
        """Drop what :meth:`hold_for_attach` held for the instance."""
        with self._lock:
            self._pending.pop(_attach_key(instance_uuid), None)

    def recheck(self, addresses):
        """Rediscover the host and return the devices at *addresses*, in
        order, when each is still there, assignable and healthy.

        Raises DeviceNotFound (gone since it was picked) or NotAssignable.
        """
        known = self.refresh().by_address()
        devices = []
        for address in addresses:
            dev = known.get(address)
            if dev is None:
                raise errors.DeviceNotFound(
                    'accelerator %s vanished from the host after it was '
                    'picked (it is no longer in sysfs); check the host with '
                    '"cyborg-nova discover" and retry' % address)
            if not dev.assignable:
                raise errors.NotAssignable(address, dev.reasons)
            if not dev.healthy:
                raise errors.NotAssignable(
                    address, ['unhealthy: %s' % dev.health.reason])
            devices.append(dev)
        return devices


def _attach_key(instance_uuid):
    """Key of an attach in progress in ``HostDevices._pending``: never an
    instance uuid, so :meth:`HostDevices.claim` and
    :meth:`HostDevices.pending` leave it alone."""
    return 'attach:%s' % instance_uuid


def _is_accelerator(alloc):
    return any(request_mod.is_accelerator_class(rc)
               for rc in alloc.get('resources', {}))
