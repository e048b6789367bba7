"""What ``cyborg-nova discover`` shows people: a table of the accelerators a
host offers and, for every device that is not offered, why.

Pure: takes :class:`~cyborg_nova.device.Device` objects and driver outcomes,
returns text.  No I/O, no Nova, no config.
"""

#: Names of PCI vendors seen on accelerator hosts (the rest show their id).
VENDOR_NAMES = {
    '1002': 'AMD',
    '1022': 'AMD',
    '10de': 'NVIDIA',
    '10ee': 'Xilinx',
    '1172': 'Altera',
    '144d': 'Samsung',
    '15b3': 'Mellanox',
    '1af4': 'virtio',
    '1d0f': 'Amazon',
    '8086': 'Intel',
}

#: PCI class names, most specific prefix first (from the PCI code and ID
#: assignment specification).
CLASS_NAMES = (
    ('010802', 'NVMe controller'),
    ('0100', 'SCSI controller'),
    ('0106', 'SATA controller'),
    ('0180', 'storage controller'),
    ('0200', 'Ethernet controller'),
    ('0207', 'InfiniBand controller'),
    ('0300', 'VGA controller'),
    ('0302', '3D controller'),
    ('0600', 'host bridge'),
    ('0601', 'ISA bridge'),
    ('0604', 'PCI bridge'),
    ('0b40', 'co-processor'),
    ('1200', 'processing accelerator'),
    ('01', 'storage controller'),
    ('02', 'network controller'),
    ('03', 'display controller'),
    ('04', 'multimedia controller'),
    ('05', 'memory controller'),
    ('06', 'bridge'),
    ('07', 'communication controller'),
    ('08', 'system peripheral'),
    ('0c', 'serial bus controller'),
    ('10', 'encryption controller'),
    ('11', 'signal processing controller'),
    ('12', 'processing accelerator'),
    ('40', 'co-processor'),
    ('ff', 'vendor-specific device'),
)

HEADER = ('ADDRESS', 'DEVICE', 'CLASS -> RESOURCE CLASS', 'NUMA', 'IOMMU',
          'KERNEL DRIVER', 'HEALTH', 'ASSIGNABLE')
INDENT = '    '


def class_name(class_id):
    """``'030200'`` -> ``'3D controller'``; '' when unknown."""
    for prefix, name in CLASS_NAMES:
        if class_id.startswith(prefix):
            return name
    return ''


def device_name(dev):
    """The driver's name for a device, else vendor name and ids."""
    if dev.name:
        return '%s (%s)' % (dev.name, dev.vendor_product)
    if not dev.vendor_id:
        return '?'
    vendor = VENDOR_NAMES.get(dev.vendor_id)
    return ('%s %s' % (vendor, dev.vendor_product) if vendor
            else dev.vendor_product)


def numa_cell(dev):
    """NUMA node; ``*`` marks one derived from the device's local CPUs."""
    if dev.numa_node is None:
        return '-'
    if dev.numa_source and dev.numa_source != 'numa_node':
        return '%d*' % dev.numa_node
    return str(dev.numa_node)


def health_cell(dev):
    return 'ok' if dev.healthy else 'UNHEALTHY'


def _row(dev):
    cls = dev.class_id or '?'
    return (dev.address, device_name(dev),
            '%s -> %s' % (cls, dev.resource_class), numa_cell(dev),
            '-' if dev.iommu_group is None else str(dev.iommu_group),
            dev.kernel_driver or '-', health_cell(dev),
            'yes' if dev.assignable else 'no')


def _format_rows(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ['  '.join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in rows]


def _notes(dev):
    """Indented lines under a device: why it is not offered, health, and
    what could not be read."""
    lines = []
    if not dev.healthy:
        lines.append('unhealthy: %s' % (dev.health.reason or 'no reason '
                                        'given by driver %s' % dev.driver))
    lines.extend(dev.reasons)
    lines.extend('error: %s' % e for e in dev.errors)
    return [INDENT + '- ' + line for line in lines]


def why_not_offered(dev):
    """One line: why a PCI device seen on the host is not offered."""
    why = []
    if dev.resource_class == 'PCI_DEVICE':
        why.append('not an accelerator class')
    if not dev.allowed:
        why.append('not allowed by config')
    if not why:
        why.append('no enabled driver reports it')
    return ', '.join(why)


def _other_line(dev):
    kind = class_name(dev.class_id)
    what = '%s (%s)' % (kind, dev.class_id) if kind else (dev.class_id or '?')
    driver = dev.kernel_driver or 'no driver'
    return '%s  %s  %s, %s: %s' % (dev.address, device_name(dev), what,
                                   driver, why_not_offered(dev))


def _count(number, singular, plural=None):
    return '%d %s' % (number, singular if number == 1 else
                      (plural or singular + 's'))


def summary(devices, other_devices=()):
    """The first line: how many accelerators, how many assignable."""
    if not devices:
        return ('No accelerators found: none of the %s seen is an '
                'accelerator the enabled drivers offer, so none is '
                'assignable.' % _count(len(other_devices), 'PCI device'))
    assignable = sum(1 for d in devices if d.assignable)
    if not assignable:
        tail = 'none is assignable (reasons below each)'
    else:
        tail = '%d assignable' % assignable
    return '%s found, %s.' % (_count(len(devices), 'accelerator'), tail)


def cpu_ranges(cpus):
    """``(0, 1, 2, 3, 8)`` -> ``'0-3,8'``."""
    cpus = sorted(cpus)
    parts = []
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else
                     '%d-%d' % (cpus[i], cpus[j]))
        i = j + 1
    return ','.join(parts)


def host_line(source, numa_nodes, iommu_enabled):
    """``Host /sys: 2 NUMA nodes (0: CPUs 0-15, 1: CPUs 16-31); IOMMU
    on``.  *numa_nodes* maps node to CPUs."""
    if numa_nodes:
        nodes = '%s (%s)' % (_count(len(numa_nodes), 'NUMA node'), ', '.join(
            '%d: CPUs %s' % (n, cpu_ranges(c) or 'none')
            for n, c in sorted(numa_nodes.items())))
    else:
        nodes = 'no NUMA nodes listed'
    iommu = ('IOMMU on' if iommu_enabled else
             'IOMMU off (no IOMMU groups)')
    return 'Host %s: %s; %s' % (source, nodes, iommu)


def discovery_table(devices, other_devices=(), drivers_ran=(),
                    failures=None, host='', tuning_drivers=(),
                    driver_notes=None):
    """The text ``cyborg-nova discover`` prints for people.

    *devices* are the discovered accelerators; *other_devices* the other PCI
    devices seen (shown one a line with the reason they are not offered);
    *drivers_ran* names the device drivers that discovered and
    *tuning_drivers* the tuning drivers loaded; *failures* maps a driver's
    name to why it was skipped and *driver_notes* a driver that ran to a
    remark (``'degraded: ...'``); *host* is the first line (see
    :func:`host_line`).
    """
    failures = failures or {}
    driver_notes = driver_notes or {}
    lines = []
    if host:
        lines.append(host)
    lines.append(summary(devices, other_devices))
    if devices:
        lines.append('')
        rows = [HEADER] + [_row(d) for d in devices]
        formatted = _format_rows(rows)
        lines.append(formatted[0])
        for dev, text in zip(devices, formatted[1:]):
            lines.append(text)
            lines.extend(_notes(dev))
        if any(numa_cell(d).endswith('*') for d in devices):
            lines.append('* NUMA node derived from the device\'s local CPUs '
                         '(the kernel reports numa_node -1)')
    if other_devices:
        lines.append('')
        lines.append('Other PCI devices (not offered to guests):')
        lines.extend(INDENT + _other_line(d) for d in other_devices)
        if any(not d.allowed for d in other_devices):
            lines.append('To offer a device, add its class to [accelerator] '
                         'allowed_classes or its vendor:product to '
                         '[accelerator] allowed_devices.')
    if drivers_ran or tuning_drivers or failures:
        lines.append('')
        lines.append('Drivers:')
        counts = {}
        for dev in devices:
            counts[dev.driver] = counts.get(dev.driver, 0) + 1
        for name in drivers_ran:
            note = driver_notes.get(name)
            lines.append('%s%s: ran, %s%s' % (
                INDENT, name, _count(counts.get(name, 0), 'accelerator'),
                ' (%s)' % note if note else ''))
        for name in tuning_drivers:
            lines.append('%s%s: loaded (tuning driver, owns no devices)'
                         % (INDENT, name))
        for name, why in sorted(failures.items()):
            lines.append('%s%s: skipped: %s' % (INDENT, name, why))
    return '\n'.join(lines) + '\n'
