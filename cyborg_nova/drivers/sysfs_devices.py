"""Turns what sysfs says about PCI devices into described
:class:`~cyborg_nova.device.Device` objects: identity, locality, resource
class, identity and NUMA traits, the operator's allowlist and the
assignability rules.  Shared by every driver of PCI devices."""

import dataclasses

from cyborg_nova.policy import allowlist as allowlist_mod
from cyborg_nova.policy import assignability
from cyborg_nova.policy import classify
from cyborg_nova.sysfs import host as sysfs_host


class SysfsDevices(object):
    """Described PCI devices of one host, read from ``context.sysfs_root``
    under the ``[accelerator]`` options of ``context.conf``."""

    def __init__(self, context):
        opts = context.conf.accelerator
        self.sysfs = sysfs_host.SysfsHost(context.sysfs_root)
        self.allowlist = allowlist_mod.Allowlist.from_options(
            opts.allowed_classes, opts.allowed_devices,
            opts.denied_addresses)
        self.require_iommu = opts.require_iommu
        self.require_reset = opts.require_reset
        self.resource_class_overrides = classify.check_overrides(
            opts.resource_classes)
        self._numa_nodes = None

    def addresses(self):
        return self.sysfs.pci_addresses()

    @property
    def numa_nodes(self):
        if self._numa_nodes is None:
            self._numa_nodes = self.sysfs.numa_nodes()
        return self._numa_nodes

    def read(self, address):
        """The raw sysfs facts of one device (no policy applied)."""
        return self.sysfs.read_pci_device(address, self.numa_nodes)

    def describe(self, address, driver, whole_device=True, raw=None):
        """One device with resource class, traits and assignability."""
        dev = raw if raw is not None else self.read(address)
        rc = classify.resource_class(dev.vendor_id, dev.product_id,
                                     dev.class_id,
                                     self.resource_class_overrides)
        traits = set()
        if dev.vendor_id:
            traits |= classify.identity_traits(dev.vendor_id,
                                               dev.product_id)
        if dev.numa_node is not None:
            traits.add(classify.numa_trait(dev.numa_node))
        not_allowed = self.allowlist.why_not(dev.address, dev.vendor_id,
                                             dev.product_id, dev.class_id)
        facts = assignability.HostFacts(
            iommu_enabled=self.sysfs.iommu_enabled(),
            members={m: (self.sysfs.class_of(m),
                         self.sysfs.kernel_driver_of(m))
                     for m in dev.iommu_group_members})
        rules = assignability.Rules(require_iommu=self.require_iommu,
                                    require_reset=self.require_reset,
                                    whole_device=whole_device)
        reasons = assignability.reasons_not_assignable(dev, facts, rules,
                                                       not_allowed)
        return dataclasses.replace(
            dev, driver=driver, resource_class=rc,
            traits=frozenset(traits), allowed=not_allowed is None,
            reasons=reasons)
