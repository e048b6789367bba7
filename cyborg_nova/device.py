"""The plain data model of an accelerator device.

Everything here is pure data: no I/O, no Nova, no libvirt, no NVML.  Drivers
build :class:`Device` objects from what they read on the host; policy modules
(assignability, fitting, scoring) read them; adapters turn them into Placement
providers, scheduler stats and guest XML.
"""

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Health:
    """Whether a device may be used, and why not when it may not."""

    healthy: bool = True
    reason: str = ''

    @classmethod
    def ok(cls) -> 'Health':
        return cls(True, '')

    @classmethod
    def bad(cls, reason: str) -> 'Health':
        return cls(False, reason)


@dataclasses.dataclass(frozen=True)
class Utilization:
    """Load of a device in percent (0-100), as its driver measured it."""

    compute_percent: Optional[float] = None
    memory_percent: Optional[float] = None

    @property
    def load(self) -> Optional[float]:
        """One number for spreading: the busier of compute and memory."""
        values = [v for v in (self.compute_percent, self.memory_percent)
                  if v is not None]
        return max(values) if values else None


@dataclasses.dataclass(frozen=True)
class MdevType:
    """One mediated-device type a physical device offers."""

    name: str                      # e.g. 'nvidia-35'
    human_name: str = ''           # from mdev_supported_types/<t>/name
    available_instances: int = 0
    device_api: str = ''           # e.g. 'vfio-pci'


@dataclasses.dataclass
class Device:
    """One PCI device (or function) on a compute host, as a driver saw it.

    Field names are those of the ``cyborg-nova discover --format json``
    contract; :meth:`to_dict` gives that contract.
    """

    address: str                               # '0000:00:06.0'
    vendor_id: str = ''                        # '10de' (4 hex digits)
    product_id: str = ''                       # '2330'
    class_id: str = ''                         # '030200' (6 hex digits)
    driver: str = ''                           # plugin that discovered it
    name: str = ''                             # human name when known
    numa_node: Optional[int] = None
    numa_source: str = ''                      # where numa_node came from
    local_cpus: tuple = ()                     # sorted host CPU ids
    iommu_group: Optional[int] = None
    iommu_group_members: tuple = ()            # other addresses in group
    pcie_path: tuple = ()                      # bridges, root port first
    kernel_driver: Optional[str] = None        # bound kernel driver
    physfn: Optional[str] = None               # SR-IOV parent (for a VF)
    virtfns: tuple = ()                        # SR-IOV VFs (for a PF)
    reset_methods: tuple = ()                  # from sysfs reset_method
    link: dict = dataclasses.field(default_factory=dict)
    resource_class: str = 'PCI_DEVICE'
    traits: frozenset = frozenset()
    capabilities: dict = dataclasses.field(default_factory=dict)
    mdev_types: tuple = ()                     # MdevType, for mdev parents
    health: Health = dataclasses.field(default_factory=Health)
    utilization: Optional[Utilization] = None
    allowed: bool = True                       # by operator config
    reasons: tuple = ()                        # why not assignable
    errors: tuple = ()                         # what could not be read

    @property
    def vendor_product(self) -> str:
        return '%s:%s' % (self.vendor_id, self.product_id)

    @property
    def assignable(self) -> bool:
        return not self.reasons

    @property
    def healthy(self) -> bool:
        return self.health.healthy

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the discovery contract other tools rely on."""
        util = self.utilization
        return {
            'address': self.address,
            'vendor_id': self.vendor_id,
            'product_id': self.product_id,
            'class_id': self.class_id,
            'name': self.name,
            'driver': self.driver,
            'kernel_driver': self.kernel_driver,
            'numa_node': self.numa_node,
            'numa_source': self.numa_source,
            'local_cpus': list(self.local_cpus),
            'iommu_group': self.iommu_group,
            'iommu_group_members': list(self.iommu_group_members),
            'pcie_path': list(self.pcie_path),
            'physfn': self.physfn,
            'virtfns': list(self.virtfns),
            'reset_methods': list(self.reset_methods),
            'link': dict(self.link),
            'resource_class': self.resource_class,
            'traits': sorted(self.traits),
            'capabilities': dict(self.capabilities),
            'mdev_types': [dataclasses.asdict(t) for t in self.mdev_types],
            'healthy': self.health.healthy,
            'health_reason': self.health.reason,
            'utilization': (None if util is None else
                            {'compute_percent': util.compute_percent,
                             'memory_percent': util.memory_percent}),
            'allowed': self.allowed,
            'assignable': self.assignable,
            'reasons': list(self.reasons),
            'errors': list(self.errors),
        }


@dataclasses.dataclass(frozen=True)
class PciHostdev:
    """What a guest needs for a whole PCI device: its host address."""

    address: str
    managed: bool = True


@dataclasses.dataclass(frozen=True)
class MdevHostdev:
    """What a guest needs for a mediated device."""

    uuid: str
    mdev_type: str
    parent: str                    # parent PCI address
    model: str = 'vfio-pci'
