"""The mediated-device driver: vGPUs (and other mdevs) from sysfs.

A PCI device offering ``mdev_supported_types`` of a type the operator
enabled (``[accelerator] enabled_mdev_types``) is reported as a *parent*:
resource class VGPU, its capacity the instances of one type, a
``CUSTOM_MDEV_TYPE_<TYPE>`` trait for that type.  The parent stays bound to
its host driver (``nvidia``): that is how mdevs work, so it is described with
``whole_device=False`` and only the other assignability rules apply.

Host-side actions go through sysfs, as the kernel documents them:

* create: write a UUID to ``<parent>/mdev_supported_types/<type>/create``;
* remove: write ``1`` to ``/sys/bus/mdev/devices/<uuid>/remove``.

An instance's mdev UUIDs are derived from the instance, the parent and an
index (:func:`mdev_uuid`), so :meth:`MdevDriver.detach` finds them without
state of its own, and :meth:`MdevDriver.ensure` (called at every build of
the guest's XML) brings them back after a host reboot, which mdevs do not
survive.
"""

import dataclasses
import itertools
import logging
import os
import uuid

import os_resource_classes as orc

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import base
from cyborg_nova.drivers import sysfs_devices
from cyborg_nova import errors
from cyborg_nova.policy import classify

LOG = logging.getLogger(__name__)

#: Namespace of the UUIDs of the mdevs this driver creates.
MDEV_NAMESPACE = uuid.UUID('6d3b7e0c-5d0e-4f0a-9a35-0c2f6b1e8a41')


def mdev_uuid(instance_uuid, parent, index=0):
    """The UUID of the *index*-th mdev of an instance on a parent device."""
    return str(uuid.uuid5(MDEV_NAMESPACE,
                          '%s/%s/%d' % (instance_uuid, parent, index)))


def type_trait(mdev_type):
    """``'nvidia-222'`` -> ``'CUSTOM_MDEV_TYPE_NVIDIA_222'``."""
    return classify.custom_name('MDEV_TYPE', mdev_type)


class MdevDriver(base.SharedDeviceDriver):

    name = 'mdev'
    specificity = 20

    def __init__(self, context):
        super().__init__(context)
        self.devices = sysfs_devices.SysfsDevices(context)
        self.enabled_types = tuple(
            t.strip() for t in context.conf.accelerator.enabled_mdev_types
            if t.strip())

    @property
    def sysfs(self):
        return self.devices.sysfs

    # -- discovery ---------------------------------------------------------

    def discover(self):
        """Every device offering an enabled mdev type, as a VGPU parent."""
        if not self.enabled_types:
            return []
        found = []
        for address in self.devices.addresses():
            offered = self.sysfs.mdev_types(address)
            if not offered:
                continue
            chosen = self._choose_type(address, offered)
            if chosen is None:
                LOG.debug('%s offers mdev types %s, none of them in '
                          '[accelerator] enabled_mdev_types', address,
                          ', '.join(t.name for t in offered))
                continue
            found.append(self._describe(address, offered, chosen))
        return found

    def _choose_type(self, address, offered):
        """The enabled type the parent hosts: one with mdevs already on it,
        else the first enabled type it offers."""
        by_name = {t.name: t for t in offered}
        enabled = [by_name[n] for n in self.enabled_types if n in by_name]
        for mdev_type in enabled:
            if self._mdevs_of(address, mdev_type.name):
                return mdev_type
        return enabled[0] if enabled else None

    def _describe(self, address, offered, chosen):
        dev = self.devices.describe(address, self.name, whole_device=False)
        used = len(self._mdevs_of(address, chosen.name))
        capabilities = dict(dev.capabilities)
        capabilities.update(mdev_type=chosen.name, vgpu_used=used,
                            vgpu_capacity=chosen.available_instances + used)
        return dataclasses.replace(
            dev, resource_class=orc.VGPU, capabilities=capabilities,
            traits=dev.traits | {type_trait(chosen.name)},
            mdev_types=offered)

    # -- host-side actions -------------------------------------------------

    def setup(self, device):
        """Check that *device* can host one more mdev of its type."""
        self._check(device.address, self.type_of(device))

    def attach(self, device, instance_uuid):
        """Create an mdev of the parent's type for the instance."""
        if not device.assignable:
            raise errors.NotAssignable(device.address, device.reasons)
        for index in itertools.count():
            new_uuid = mdev_uuid(instance_uuid, device.address, index)
            if not self.mdev_exists(new_uuid):
                break
        return self.create_mdev(device.address, self.type_of(device),
                                new_uuid)

    def ensure(self, device, instance_uuid, index):
        """The instance's *index*-th mdev on the parent: reused when it
        exists (every rebuild of the guest XML asks again), created with
        its derived UUID otherwise (first boot, after a host reboot)."""
        wanted = mdev_uuid(instance_uuid, device.address, index)
        if self.mdev_exists(wanted):
            return device_mod.MdevHostdev(uuid=wanted,
                                          mdev_type=self.type_of(device),
                                          parent=device.address)
        if not device.assignable:
            raise errors.NotAssignable(device.address, device.reasons)
        return self.create_mdev(device.address, self.type_of(device),
                                wanted)

    def parent_of(self, mdev):
        """The parent address of the existing mdev of UUID *mdev*, or None
        when there is no such mdev."""
        link = self.sysfs.path('bus', 'mdev', 'devices', mdev)
        if not os.path.lexists(link):
            return None
        return os.path.basename(os.path.dirname(os.path.realpath(link)))

    def instance_mdevs(self, device, instance_uuid):
        """UUIDs of the instance's mdevs on the parent, by index."""
        present = self._mdevs_of(device.address)
        # An index is below the most mdevs the parent held at once.
        bound = len(present) + max(
            (t.available_instances
             for t in self.sysfs.mdev_types(device.address)), default=0)
        ours = [mdev_uuid(instance_uuid, device.address, i)
                for i in range(bound)]
        return [u for u in ours if u in present]

    def create_mdev(self, parent, mdev_type, new_uuid):
        """Create one mdev of *mdev_type* on *parent*; returns its
        :class:`~cyborg_nova.device.MdevHostdev`."""
        path = os.path.join(self._check(parent, mdev_type), 'create')
        try:
            self.sysfs.write(path, new_uuid)
        except OSError as exc:
            raise errors.MdevWriteFailed(
                'could not create mdev %s of type %s on %s: writing %s '
                'failed (%s); check the host driver\'s log (dmesg) and that '
                'the device is not in use by the host'
                % (new_uuid, mdev_type, parent, path, exc.strerror or exc),
                parent=parent, mdev_type=mdev_type)
        LOG.info('Created mdev %s of type %s on %s', new_uuid, mdev_type,
                 parent)
        return device_mod.MdevHostdev(uuid=new_uuid, mdev_type=mdev_type,
                                      parent=parent)

    def remove_mdev(self, mdev):
        """Remove the mdev of UUID *mdev*; True when it existed."""
        if not self.mdev_exists(mdev):
            LOG.debug('mdev %s is already gone', mdev)
            return False
        path = self.sysfs.path('bus', 'mdev', 'devices', mdev, 'remove')
        try:
            self.sysfs.write(path, '1')
        except OSError as exc:
            raise errors.MdevWriteFailed(
                'could not remove mdev %s: writing 1 to %s failed (%s); a '
                'guest may still use it: stop the guest, then retry'
                % (mdev, path, exc.strerror or exc))
        LOG.info('Removed mdev %s', mdev)
        return True

    def mdev_exists(self, mdev):
        return os.path.exists(self.sysfs.path('bus', 'mdev', 'devices', mdev))

    # -- helpers -----------------------------------------------------------

    def type_of(self, device):
        """The mdev type the parent hosts."""
        mdev_type = device.capabilities.get('mdev_type')
        if mdev_type:
            return mdev_type
        chosen = self._choose_type(device.address,
                                   self.sysfs.mdev_types(device.address))
        if chosen is None:
            raise errors.MdevTypeUnknown(
                '%s offers none of the enabled mdev types (%s); add one of '
                'its types to [accelerator] enabled_mdev_types'
                % (device.address, ', '.join(self.enabled_types) or 'none'),
                parent=device.address)
        return chosen.name

    def _check(self, parent, mdev_type):
        """The type's sysfs directory, when *parent* can host one more mdev
        of *mdev_type*; raises a typed error saying why not otherwise."""
        if not self.sysfs.exists(parent):
            raise errors.DeviceNotFound(
                'device %s is no longer on this host (it vanished after '
                'discovery); rescan with cyborg-nova discover' % parent)
        offered = {t.name: t for t in self.sysfs.mdev_types(parent)}
        if mdev_type not in offered:
            raise errors.MdevTypeUnknown(
                '%s does not offer mdev type %s (it offers: %s); check '
                '[accelerator] enabled_mdev_types and that the vGPU host '
                'driver is loaded' % (parent, mdev_type,
                                      ', '.join(sorted(offered)) or 'none'),
                parent=parent, mdev_type=mdev_type)
        if offered[mdev_type].available_instances < 1:
            raise errors.MdevUnavailable(
                '%s has no instance of mdev type %s left (%d in use); '
                'free one or place the guest on another GPU'
                % (parent, mdev_type,
                   len(self._mdevs_of(parent, mdev_type))),
                parent=parent, mdev_type=mdev_type)
        return os.path.join(self.sysfs.device_dir(parent),
                            'mdev_supported_types', mdev_type)

    def _mdevs_of(self, parent, mdev_type=None):
        """UUIDs of the mdevs on *parent* (of one type, or of every type)."""
        base_dir = os.path.join(self.sysfs.device_dir(parent),
                                'mdev_supported_types')
        types = [mdev_type] if mdev_type else _listdir(base_dir)
        return {name for t in types
                for name in _listdir(os.path.join(base_dir, t, 'devices'))}


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
