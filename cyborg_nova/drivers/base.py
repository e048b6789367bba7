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
