"""Accelerators in libvirt guest config, with Nova's own config objects.

Builds ``<hostdev>`` elements for devices, ``<vcpu cpuset>`` and
``<numatune>`` for NUMA-local placement of shared-CPU guests, and reads
back which PCI devices and mdevs a defined guest holds.
"""

from nova.pci import utils as pci_utils
from nova.virt.libvirt import config as vconfig


def hostdev_config(hostdev):
    """A ``LibvirtConfigGuestHostdevPCI`` (or MDEV) for a guest device
    description from a driver's ``attach()``."""
    if hasattr(hostdev, 'uuid'):
        cfg = vconfig.LibvirtConfigGuestHostdevMDEV()
        cfg.uuid = hostdev.uuid
        cfg.model = hostdev.model
        return cfg
    domain, bus, slot, function = pci_utils.parse_address(hostdev.address)
    cfg = vconfig.LibvirtConfigGuestHostdevPCI()
    cfg.domain, cfg.bus, cfg.slot, cfg.function = domain, bus, slot, function
    cfg.managed = 'yes' if hostdev.managed else 'no'
    return cfg


def address_of(cfg):
    """The host PCI address a ``LibvirtConfigGuestHostdevPCI`` names."""
    return pci_utils.get_pci_address(
        '%04x' % int(cfg.domain, 16), '%02x' % int(cfg.bus, 16),
        '%02x' % int(cfg.slot, 16), '%x' % int(cfg.function, 16))


def pci_addresses_in(guest):
    """Host PCI addresses in a ``nova.virt.libvirt.guest.Guest``'s config."""
    return [address_of(d) for d in
            guest.get_all_devices(vconfig.LibvirtConfigGuestHostdevPCI)]


def pci_addresses_in_config(guest_cfg):
    """Host PCI addresses in a ``LibvirtConfigGuest`` being built."""
    return [address_of(d) for d in guest_cfg.devices
            if isinstance(d, vconfig.LibvirtConfigGuestHostdevPCI)]


def mdev_uuids_in(guest):
    """UUIDs of the mdevs in a ``nova.virt.libvirt.guest.Guest``'s config."""
    return [d.uuid for d in
            guest.get_all_devices(vconfig.LibvirtConfigGuestHostdevMDEV)]


def mdev_uuids_in_config(guest_cfg):
    """UUIDs of the mdevs in a ``LibvirtConfigGuest`` being built."""
    return [d.uuid for d in guest_cfg.devices
            if isinstance(d, vconfig.LibvirtConfigGuestHostdevMDEV)]


def numatune_config(nodes, mode='strict'):
    """``<numatune><memory mode=.. nodeset=../></numatune>``."""
    tune = vconfig.LibvirtConfigGuestNUMATune()
    tune.memory = vconfig.LibvirtConfigGuestNUMATuneMemory()
    tune.memory.mode = mode
    tune.memory.nodeset = sorted(nodes)
    return tune
