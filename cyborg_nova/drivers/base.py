"""The driver contract.

A *device driver* knows one kind of accelerator on a compute host, following
the 2017 Cyborg driver design:

* ``discover()`` - the devices it manages, as
  :class:`~cyborg_nova.device.Device` objects (never raises for one bad
  device: it records the reason on it);
* ``health(device)`` and ``utilization(device)`` - fresh readings;
* ``setup(device)`` / ``uninstall(device)`` - host-side preparation and
  cleanup (bind to vfio-pci, create or remove mdevs, reset between tenants);
* ``attach(device, instance_uuid)`` / ``detach(device, instance_uuid)`` -
  what the guest needs (:class:`~cyborg_nova.device.PciHostdev` or
  :class:`~cyborg_nova.device.MdevHostdev`), and the reverse.

A driver of *shared* devices (resource class VGPU: a parent several guests
use through mediated devices) is a :class:`SharedDeviceDriver`: it also
makes each guest's mdevs under UUIDs derived from the instance, the parent
and an index, so the guest's XML can be built again at any time.

A *tuning driver* changes the guest around its devices instead of owning
devices; NUMA-local vCPU pinning is the first one.

Drivers get their hardware handles injected (a :class:`HostContext` holding
the sysfs root, the NVML module, the config), so every driver runs in tests
on recorded or synthetic hosts.  A new accelerator is a new driver class
registered under the ``cyborg_nova.drivers`` entry-point namespace; nothing
else in the package changes.
"""

import abc
import dataclasses
from typing import Any, Optional

from cyborg_nova import device as device_mod


@dataclasses.dataclass
class HostContext:
    """What a driver may touch on the host, injected.

    ``sysfs_root`` is ``/sys`` on a real host and a captured or synthetic
    tree in tests; ``nvml`` is the ``pynvml`` module or a fake with the same
    functions; ``conf`` is the oslo.config object holding ``[accelerator]``.
    """

    sysfs_root: str = '/sys'
    conf: Any = None
    nvml: Any = None


class AcceleratorDriver(metaclass=abc.ABCMeta):
    """Base class of drivers that own devices."""

    #: The entry-point name; set by subclasses.
    name = ''
    #: When two drivers report the same PCI address, the higher wins
    #: (a vendor driver knows more than the generic ``pci`` driver).
    specificity = 0
    #: Tuning drivers set this to True.
    tuning = False

    def __init__(self, context: HostContext):
        self.context = context

    @abc.abstractmethod
    def discover(self) -> list:
        """Return the devices this driver manages on the host.

        Must not raise for a problem with one device: record it in the
        device's ``errors``, ``health`` or ``reasons`` instead.  May raise
        :class:`~cyborg_nova.errors.DriverError` when the driver cannot run
        at all on this host (its library is missing, say); the caller
        reports that and goes on with the other drivers.
        """

    def health(self, device: device_mod.Device) -> device_mod.Health:
        """A fresh health reading; by default the one from discovery."""
        return device.health

    def utilization(self, device: device_mod.Device
                    ) -> Optional[device_mod.Utilization]:
        """A fresh load reading, or None when the driver cannot measure."""
        return device.utilization

    def setup(self, device: device_mod.Device) -> None:
        """Prepare the device on the host before a guest gets it."""

    def uninstall(self, device: device_mod.Device) -> None:
        """Clean the device up on the host after a guest released it."""

    @abc.abstractmethod
    def attach(self, device: device_mod.Device, instance_uuid: str):
        """Return what the guest needs for this device."""

    def detach(self, device: device_mod.Device, instance_uuid: str) -> None:
        """Undo :meth:`attach` on the host side (libvirt does the guest's)."""


class SharedDeviceDriver(AcceleratorDriver):
    """A driver whose devices are vGPU parents shared by guests, each
    guest holding mdevs on them (see :mod:`cyborg_nova.drivers.mdev`).
    :meth:`attach` makes one more mdev for the instance; :meth:`detach`
    removes the instance's mdevs on the parent; the parent itself is never
    reset (other guests use it)."""

    @abc.abstractmethod
    def ensure(self, device: device_mod.Device, instance_uuid: str,
               index: int) -> device_mod.MdevHostdev:
        """The instance's *index*-th mdev on the parent, made when missing
        (first boot, after a host reboot); every build of the guest's XML
        asks for it."""

    @abc.abstractmethod
    def instance_mdevs(self, device: device_mod.Device,
                       instance_uuid: str) -> list:
        """UUIDs of the instance's mdevs on the parent, by index."""

    @abc.abstractmethod
    def remove_mdev(self, mdev: str) -> bool:
        """Remove one mdev; True when it existed."""

    @abc.abstractmethod
    def type_of(self, device: device_mod.Device) -> str:
        """The mdev type the parent hosts."""

    @abc.abstractmethod
    def parent_of(self, mdev: str) -> Optional[str]:
        """The parent address of an existing mdev, or None."""

    def detach(self, device: device_mod.Device, instance_uuid: str,
               keep=()) -> None:
        """Remove the instance's mdevs on the parent but those in *keep*
        (the ones its guest still has)."""
        for mdev in self.instance_mdevs(device, instance_uuid):
            if mdev not in keep:
                self.remove_mdev(mdev)


class TuningDriver(metaclass=abc.ABCMeta):
    """Base class of drivers that change the guest around its devices."""

    name = ''
    tuning = True

    def __init__(self, context: HostContext):
        self.context = context

    def discover(self) -> list:
        """Tuning drivers own no devices."""
        return []

    @abc.abstractmethod
    def tune(self, placement_request, host_topology):
        """Return how to place the guest; see the concrete driver."""
