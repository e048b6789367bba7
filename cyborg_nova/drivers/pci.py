"""The generic PCI driver: every PCI device the operator allows, from
sysfs alone.  Vendor drivers (``nvidia``, ``mdev``) report the devices they
know better; the generic driver covers the rest (FPGAs, other GPUs,
accelerator VFs)."""

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import base
from cyborg_nova.drivers import sysfs_devices
from cyborg_nova import errors


class PciDriver(base.AcceleratorDriver):

    name = 'pci'
    specificity = 0

    def __init__(self, context):
        super().__init__(context)
        self.devices = sysfs_devices.SysfsDevices(context)

    def discover(self):
        """Every allowed PCI device, plus the devices that are not allowed
        but are accelerators by class, so an operator sees why they are not
        offered.  Bridges, host bridges and other infrastructure are left
        out unless the operator allowed them."""
        found = []
        for address in self.devices.addresses():
            dev = self.devices.describe(address, self.name)
            if dev.allowed or dev.resource_class != 'PCI_DEVICE':
                found.append(dev)
        return found

    def describe_all(self):
        """Every PCI device on the host, allowed or not (for people)."""
        return [self.devices.describe(a, self.name)
                for a in self.devices.addresses()]

    def attach(self, device, instance_uuid):
        if not device.assignable:
            raise errors.NotAssignable(device.address, device.reasons)
        if not self.devices.sysfs.exists(device.address):
            raise errors.DeviceNotFound(
                'device %s is no longer on this host (it vanished after '
                'discovery); rescan with cyborg-nova discover'
                % device.address)
        return device_mod.PciHostdev(address=device.address)
