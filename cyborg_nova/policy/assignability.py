"""May a device be handed to a guest?  The security rules, as one function.

A device is handed to a guest only when it is allowed by the operator,
isolated (alone in its IOMMU group, bridges apart), not in use by the host
(bound to vfio-pci or to no driver), resettable between tenants, and not an
SR-IOV physical function with VFs enabled.  Each rule that fails adds one
reason a person can act on.
"""

import dataclasses

#: Kernel drivers a device may be bound to when it is handed to a guest.
GUEST_DRIVERS = (None, 'vfio-pci')
#: PCI class prefix of bridges, which may share a device's IOMMU group.
BRIDGE_CLASS_PREFIX = '0604'


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What the rules need to know about the host beyond the device."""

    iommu_enabled: bool = True
    #: address -> (class_id, kernel_driver) of every IOMMU-group member
    members: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Rules:
    require_iommu: bool = True
    require_reset: bool = True
    #: True for passthrough of the whole device; False for a parent whose
    #: mdevs or VFs are handed out instead (host drivers are expected then).
    whole_device: bool = True


def reasons_not_assignable(device, host, rules=Rules(), not_allowed=None):
    """Reasons why *device* may not be handed to a guest; empty when it may.

    *not_allowed* is the allowlist's reason (None when allowed).
    """
    reasons = []
    if not device.vendor_id or not device.class_id:
        reasons.append('its identity could not be read from sysfs (%s)'
                       % ('; '.join(device.errors) or 'unknown error'))
    if not_allowed:
        reasons.append(not_allowed)
    if rules.require_iommu:
        reasons.extend(_iommu_reasons(device, host))
    if rules.whole_device:
        if device.kernel_driver not in GUEST_DRIVERS:
            reasons.append(
                'in use by the host: bound to kernel driver %r; bind it to '
                'vfio-pci (echo vfio-pci > /sys/bus/pci/devices/%s/'
                'driver_override) when the host does not need it'
                % (device.kernel_driver, device.address))
        if device.virtfns:
            reasons.append(
                'an SR-IOV physical function with %d VFs enabled: its VFs '
                'are handed out instead' % len(device.virtfns))
    if rules.require_reset and not device.reset_methods:
        reasons.append(
            'cannot be reset between tenants (sysfs reset_method is empty '
            'or missing); set [accelerator] require_reset = False only if '
            'you accept that one tenant\'s data may reach the next')
    return tuple(reasons)


def _iommu_reasons(device, host):
    if not host.iommu_enabled:
        return ['no IOMMU groups on this host: enable the IOMMU '
                '(intel_iommu=on or amd_iommu=on on the kernel command line)']
    if device.iommu_group is None:
        return ['not in an IOMMU group: the IOMMU does not cover it']
    sharing = []
    for address in device.iommu_group_members:
        class_id, driver = host.members.get(address, ('', None))
        if class_id.startswith(BRIDGE_CLASS_PREFIX):
            continue
        sharing.append('%s (class %s, driver %s)'
                       % (address, class_id or '?', driver or 'none'))
    if sharing:
        return ['not isolated: IOMMU group %d also holds %s, which would be '
                'exposed to the guest too; move the device to a slot with '
                'ACS isolation' % (device.iommu_group, ', '.join(sharing))]
    return []
