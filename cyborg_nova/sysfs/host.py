"""A compute host's PCI devices, NUMA nodes and IOMMU groups, from sysfs.

:class:`SysfsHost` reads a sysfs tree rooted anywhere.  It never raises for
one bad device or attribute: what it could not read goes into the device's
``errors`` (with the path and the value), so discovery of the rest goes on.
The layout is the kernel's:

* ``bus/pci/devices/<addr>`` -> ``../../../devices/pci0000:00/.../<addr>``
* ``<dev>/driver`` -> ``.../bus/pci/drivers/<name>``
* ``<dev>/iommu_group`` -> ``.../kernel/iommu_groups/<n>``,
  whose ``devices/`` lists the group's members
* ``<dev>/physfn``, ``<dev>/virtfn<i>`` for SR-IOV
* ``<dev>/mdev_supported_types/<type>/{name,available_instances,device_api}``
* ``devices/system/node/node<n>/cpulist``
"""

import logging
import os

from cyborg_nova import device as device_mod
from cyborg_nova.sysfs import parse

LOG = logging.getLogger(__name__)

#: PCI class of PCI-to-PCI bridges (root ports, switch ports).
BRIDGE_CLASS_PREFIX = '0604'


class SysfsHost(object):
    """Reads devices and topology from the sysfs tree at *root*."""

    def __init__(self, root='/sys'):
        self.root = root

    # -- low level -------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def read(self, path):
        """Raw text of an attribute; raises OSError when unreadable."""
        with open(path, 'rb') as f:
            return f.read(65536)

    def _attr(self, dev_dir, name, parser, errors, optional=False):
        """Parse attribute *name* of *dev_dir*; failures go to *errors*."""
        path = os.path.join(dev_dir, name)
        try:
            raw = self.read(path)
        except FileNotFoundError:
            if not optional:
                errors.append('%s: missing' % self._rel(path))
            return None
        except OSError as exc:
            errors.append('%s: unreadable (%s)' % (self._rel(path),
                                                   exc.strerror or exc))
            return None
        try:
            return parser(raw)
        except ValueError as exc:
            errors.append('%s: %s' % (self._rel(path), exc))
            return None

    def _rel(self, path):
        return os.path.relpath(path, self.root)

    def _link_name(self, path):
        """Basename of a symlink's target, or None when it is no link."""
        if not os.path.islink(path):
            return None
        return os.path.basename(os.readlink(path).rstrip('/'))

    # -- host level ------------------------------------------------------

    def pci_addresses(self):
        """Addresses of every PCI device the kernel lists, sorted."""
        base = self.path('bus', 'pci', 'devices')
        try:
            names = os.listdir(base)
        except OSError:
            return []
        return sorted(n.lower() for n in names if parse.is_pci_address(n))

    def device_dir(self, address):
        """The device's real directory (through the bus symlink)."""
        return os.path.realpath(self.path('bus', 'pci', 'devices', address))

    def exists(self, address):
        return os.path.isdir(self.device_dir(address))

    def numa_nodes(self):
        """``{node: (cpu, ...)}`` from ``devices/system/node``."""
        base = self.path('devices', 'system', 'node')
        nodes = {}
        try:
            names = os.listdir(base)
        except OSError:
            return nodes
        for name in names:
            if not (name.startswith('node') and name[4:].isdigit()):
                continue
            errors = []
            cpus = self._attr(os.path.join(base, name), 'cpulist',
                              parse.cpulist, errors)
            if errors:
                LOG.warning('Ignoring NUMA node %s: %s', name,
                            '; '.join(errors))
                continue
            nodes[int(name[4:])] = cpus
        return dict(sorted(nodes.items()))

    def iommu_enabled(self):
        """True when the kernel created IOMMU groups."""
        try:
            return bool(os.listdir(self.path('kernel', 'iommu_groups')))
        except OSError:
            return False

    def iommu_group_members(self, group):
        base = self.path('kernel', 'iommu_groups', str(group), 'devices')
        try:
            return tuple(sorted(n.lower() for n in os.listdir(base)
                                if parse.is_pci_address(n)))
        except OSError:
            return ()

    # -- device level ----------------------------------------------------

    def read_pci_device(self, address, numa_nodes=None):
        """What sysfs says about one PCI device, as a
        :class:`~cyborg_nova.device.Device` (without resource class, traits,
        health or assignability, which policy decides).

        *numa_nodes* (from :meth:`numa_nodes`) lets a caller reading many
        devices read the node list once.
        """
        dev_dir = self.device_dir(address)
        errors = []
        if not os.path.isdir(dev_dir):
            return device_mod.Device(
                address=address,
                errors=('%s: no such device (it vanished or was never '
                        'there)' % self._rel(dev_dir),))
        vendor = self._attr(dev_dir, 'vendor', parse.hex_id, errors)
        product = self._attr(dev_dir, 'device', parse.hex_id, errors)
        class_id = self._attr(dev_dir, 'class', parse.pci_class, errors)
        local_cpus = self._attr(dev_dir, 'local_cpulist', parse.cpulist,
                                errors, optional=True) or ()
        node = self._attr(dev_dir, 'numa_node', parse.numa_node, errors,
                          optional=True)
        if numa_nodes is None:
            numa_nodes = self.numa_nodes()
        node, numa_source = derive_numa_node(node, local_cpus, numa_nodes)
        resets = self._attr(dev_dir, 'reset_method', parse.word_list,
                            errors, optional=True) or ()
        group = None
        members = ()
        group_name = self._link_name(os.path.join(dev_dir, 'iommu_group'))
        if group_name is not None:
            if group_name.isdigit():
                group = int(group_name)
                members = tuple(m for m in self.iommu_group_members(group)
                                if m != address)
            else:
                errors.append('%s: %r is not an IOMMU group number' % (
                    self._rel(os.path.join(dev_dir, 'iommu_group')),
                    group_name))
        physfn = self._link_name(os.path.join(dev_dir, 'physfn'))
        virtfns = tuple(sorted(
            self._link_name(os.path.join(dev_dir, n))
            for n in _listdir(dev_dir) if n.startswith('virtfn')))
        link = {}
        for name in ('current_link_speed', 'current_link_width',
                     'max_link_speed', 'max_link_width'):
            value = self._attr(dev_dir, name, parse.text_value, errors,
                               optional=True)
            if value:
                link[name] = value
        return device_mod.Device(
            address=address,
            vendor_id=vendor or '',
            product_id=product or '',
            class_id=class_id or '',
            numa_node=node,
            numa_source=numa_source,
            local_cpus=local_cpus,
            iommu_group=group,
            iommu_group_members=members,
            pcie_path=self.pcie_path(dev_dir),
            kernel_driver=self._link_name(os.path.join(dev_dir, 'driver')),
            physfn=physfn.lower() if physfn else None,
            virtfns=virtfns,
            reset_methods=resets,
            link=link,
            errors=tuple(errors),
        )

    def pcie_path(self, dev_dir):
        """Addresses of the bridges above a device, root port first."""
        parents = []
        parent = os.path.dirname(dev_dir)
        while parse.is_pci_address(os.path.basename(parent)):
            parents.append(os.path.basename(parent).lower())
            parent = os.path.dirname(parent)
        root_complex = os.path.basename(parent)
        path = tuple(reversed(parents))
        return ((root_complex,) + path) if root_complex.startswith('pci') \
            else path

    def class_of(self, address):
        """PCI class of a device, or '' when it cannot be read."""
        errors = []
        return self._attr(self.device_dir(address), 'class', parse.pci_class,
                          errors) or ''

    def kernel_driver_of(self, address):
        return self._link_name(os.path.join(self.device_dir(address),
                                            'driver'))

    def mdev_types(self, address):
        """The mdev types a device offers, as
        :class:`~cyborg_nova.device.MdevType`; errors go to the log."""
        base = os.path.join(self.device_dir(address), 'mdev_supported_types')
        types = []
        for name in sorted(_listdir(base)):
            type_dir = os.path.join(base, name)
            errors = []
            available = self._attr(type_dir, 'available_instances',
                                   parse.integer, errors)
            human = self._attr(type_dir, 'name', parse.text_value, errors,
                               optional=True)
            api = self._attr(type_dir, 'device_api', parse.text_value,
                             errors, optional=True)
            if errors:
                LOG.warning('mdev type %s of %s: %s', name, address,
                            '; '.join(errors))
            types.append(device_mod.MdevType(
                name=name, human_name=human or '',
                available_instances=available or 0, device_api=api or ''))
        return tuple(types)

    def write(self, path, text):
        """Write an attribute (host set-up: driver_override, bind, ...)."""
        with open(path, 'w') as f:
            f.write(text)


def derive_numa_node(node, local_cpus, numa_nodes):
    """The device's NUMA node and where that answer came from.

    The kernel says -1 (``None`` here) on hosts whose firmware does not
    tell; then, when all of the device's local CPUs lie in one node, that
    node is the answer.
    """
    if node is not None:
        return node, 'numa_node'
    if local_cpus and numa_nodes:
        wanted = set(local_cpus)
        holders = [n for n, cpus in numa_nodes.items()
                   if wanted & set(cpus)]
        if len(holders) == 1 and wanted <= set(numa_nodes[holders[0]]):
            return holders[0], 'local_cpulist'
    return None, ''


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
