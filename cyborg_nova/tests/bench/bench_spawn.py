"""What our compute driver adds to a spawn, next to Nova's own guest XML.

On a synthetic host of 2 NUMA nodes of 16 CPUs with 8 H100 GPUs all on
node 0 (:func:`cyborg_nova.tests.fixtures.hosts.gpu_host`, GPUs bound to
vfio-pci, every registered driver enabled, NVML not asked), one "spawn" of
ours is, as :class:`~cyborg_nova.virt_hooks.driver.AcceleratedLibvirtDriver`
does it:

* ``HostDevices.claim`` of an allocation of ``PGPU:k`` from the node-0
  group provider (``inventory.provider_uuid(root, suffix)``), no other guest
  holding a GPU;
* for each picked GPU, ``guest_devices.hostdev_config(driver.attach(...))``
  (the driver's attach re-checks the device in sysfs);
* ``numa_fit.place`` of a shared-CPU guest (8 vCPUs, 16 GiB, policy
  ``preferred``) next to the GPUs, and the ``<numatune>`` config it gives;
* ``HostDevices.settle``.

Left out, because they are libvirt or database calls whose cost depends on
the host, not on our code: listing the defined guests (``claim`` gets
``{}``), Nova's host NUMA topology (the cells are built once), and writing
the instance record.

The baseline, in the same run: building a ``LibvirtConfigGuest`` with the
same *k* ``<hostdev>`` elements, ``<vcpu cpuset>`` and ``<numatune>`` (plus
the name, uuid, memory, vCPUs and OS type every guest has) and serialising
it with ``to_xml()``: the cheapest part of Nova's own guest-config work, so
the ratio overstates our share.  ``LibvirtDriver._get_guest_config`` itself
is not timed: it needs a libvirt connection (fakelibvirt), a Host, image
metadata and instance objects from Nova's test harness.

Prints median, min and max in microseconds over N spawns of each case,
after untimed warm-up spawns, and the ratio of our median to the XML
build's median for the same number of GPUs.

Run ``python -m cyborg_nova.tests.bench [--quick] spawn`` or
``python -m cyborg_nova.tests.bench.bench_spawn --help``.
"""

import argparse
import gc
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid

from oslo_config import cfg

from cyborg_nova.cmd import discover as discover_cmd
from cyborg_nova import conf as cn_conf
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_fit
from cyborg_nova.tests.bench import options
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.virt_hooks import guest_devices
from cyborg_nova.virt_hooks import host_devices

from nova.virt.libvirt import config as vconfig

QUICK_ARGV = ('--quick',)
DEFAULT_RUNS = 1000
QUICK_RUNS = 200
WARMUP = 20
GPU_COUNTS = (8, 1)
NODES = 2
CPUS_PER_NODE = 16
NODE_MEMORY_MB = 256 * 1024
GUEST_VCPUS = 8
GUEST_MEMORY_MB = 16 * 1024
ROOT_UUID = '5a1c0de0-0000-4000-8000-00000000b0b0'


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.tests.bench.bench_spawn',
        description='Time the device work our compute driver adds to a '
                    'spawn (claim, hostdev configs, NUMA placement) on a '
                    'synthetic 8-GPU host, next to building and serialising '
                    'a comparable LibvirtConfigGuest.')
    options.add_run_options(parser, DEFAULT_RUNS, QUICK_RUNS,
                            unit='spawns per case')
    return options.parse_run_options(parser, argv, DEFAULT_RUNS, QUICK_RUNS)


def make_host(root):
    conf = cfg.ConfigOpts()
    cn_conf.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[],
         default_config_dirs=[])
    host = host_devices.HostDevices(
        conf, nvml=discover_cmd.OtherHostNvml(root), sysfs_root=root)
    host.refresh()
    return host


def numa_cells():
    """What ``_numa_cells_for_shared_guests`` gives on this host."""
    return {node: numa_fit.NumaCell(
        cpus=range(node * CPUS_PER_NODE, (node + 1) * CPUS_PER_NODE),
        free_memory_mb=NODE_MEMORY_MB) for node in range(NODES)}


def gpu_provider(host):
    """``(provider uuid, suffix)`` of the group holding the GPUs."""
    groups = host.groups_by_provider(ROOT_UUID)
    gpu = [(uuid_, suffix) for uuid_, (suffix, devs) in groups.items()
           if suffix.startswith('PGPU_')]
    if len(gpu) != 1:
        raise RuntimeError('expected one PGPU group provider on the '
                           'synthetic host, found %s; check '
                           'hosts.gpu_host and the drivers registered'
                           % sorted(s for _, s in gpu))
    uuid_, suffix = gpu[0]
    assert uuid_ == inventory.provider_uuid(ROOT_UUID, suffix)
    return uuid_, suffix


def our_spawn(host, cells, allocations, instance_uuid):
    """The device work of one spawn; returns the hostdev configs, the
    cpuset and the numatune."""
    devices = host.claim(instance_uuid, allocations, ROOT_UUID, {})
    configs = [guest_devices.hostdev_config(
        host.driver_for(d).attach(d, instance_uuid)) for d in devices]
    placement = numa_fit.place(
        cells, {d.address: d.numa_node for d in devices},
        vcpus=GUEST_VCPUS, memory_mb=GUEST_MEMORY_MB, dedicated=False,
        policy=numa_fit.PREFERRED)
    cpuset = numatune = None
    if placement.constrained:
        cpuset = set(placement.cpuset)
        numatune = guest_devices.numatune_config(placement.memory_nodes)
    host.settle(instance_uuid)
    return configs, cpuset, numatune


def xml_build(addresses, cpuset, nodes, instance_uuid):
    """Nova's config objects for a comparable guest, serialised."""
    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = 'kvm'
    guest.name = 'instance-00000001'
    guest.uuid = instance_uuid
    guest.memory = GUEST_MEMORY_MB * 1024
    guest.vcpus = GUEST_VCPUS
    guest.os_type = 'hvm'
    guest.cpuset = set(cpuset)
    guest.numatune = guest_devices.numatune_config(nodes)
    for address in addresses:
        hostdev = vconfig.LibvirtConfigGuestHostdevPCI()
        (hostdev.domain, hostdev.bus, hostdev.slot,
         hostdev.function) = address
        hostdev.managed = 'yes'
        guest.add_device(hostdev)
    return guest.to_xml()


def timed(fn, runs):
    for _ in range(WARMUP):
        fn()
    gc.collect()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(host, runs):
    cells = numa_cells()
    rp_uuid, suffix = gpu_provider(host)
    instance_uuid = str(uuid.uuid4())
    rows = []
    for count in GPU_COUNTS:
        allocations = {rp_uuid: {'resources': {'PGPU': count}}}
        configs, cpuset, numatune = our_spawn(host, cells, allocations,
                                              instance_uuid)
        if len(configs) != count or not cpuset:
            raise RuntimeError('a spawn of %d GPU(s) got %d hostdev(s) and '
                               'cpuset %s; the benchmark measures the wrong '
                               'thing' % (count, len(configs), cpuset))
        addresses = [(c.domain, c.bus, c.slot, c.function) for c in configs]
        nodes = numatune.memory.nodeset
        xml = xml_build(addresses, cpuset, nodes, instance_uuid)
        if xml.count('<hostdev') != count or 'numatune' not in xml:
            raise RuntimeError('the baseline XML lacks its hostdevs or '
                               'numatune:\n%s' % xml)
        ours = timed(lambda: our_spawn(host, cells, allocations,
                                       instance_uuid), runs)
        base = timed(lambda: xml_build(addresses, cpuset, nodes,
                                       instance_uuid), runs)
        rows.append(('ours: %d GPU%s (claim+attach+place+settle)'
                     % (count, 's' if count > 1 else ''), ours, base))
        rows.append(('nova: LibvirtConfigGuest %d hostdev%s .to_xml()'
                     % (count, 's' if count > 1 else ''), base, base))
    return rows, suffix


def fmt_us(seconds):
    return '%.1f' % (seconds * 1e6)


def report(rows):
    head = '%-48s %10s %19s %6s %7s' % ('case', 'median us', 'min-max us',
                                        'N', 'ratio')
    lines = [head, '-' * len(head)]
    for label, times, base in rows:
        lines.append('%-48s %10s %19s %6d %6.2fx' % (
            label, fmt_us(statistics.median(times)),
            '%s-%s' % (fmt_us(min(times)), fmt_us(max(times))), len(times),
            statistics.median(times) / statistics.median(base)))
    lines.append('')
    lines.append('ratio: median of the case over the median of the XML '
                 'build with the same number of GPUs.')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr,
                        level=getattr(logging, args.log_level.upper()))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='cyborg-nova-bench-') as tmp:
        root = os.path.join(tmp, 'sys')
        os.makedirs(root)
        hosts.gpu_host(root, gpu_nodes=[0] * 8, cpus_per_node=CPUS_PER_NODE,
                       nodes=NODES)
        host = make_host(root)
        drivers = sorted({d.driver for d in host.devices})
        rows, suffix = measure(host, args.runs)
    print('Spawn cost our compute driver adds (device work), next to '
          'building a comparable guest XML with Nova\'s config objects')
    print('Host: %d NUMA nodes x %d CPUs, 8 H100 on node 0 (group %s, '
          'driver %s); guest %d shared vCPUs, %d MiB, NUMA policy '
          'preferred' % (NODES, CPUS_PER_NODE, suffix, ', '.join(drivers),
                         GUEST_VCPUS, GUEST_MEMORY_MB))
    print('Not timed: listing libvirt guests, Nova\'s host NUMA topology, '
          'the instance record, LibvirtDriver._get_guest_config')
    print('Python %s, %s, %d CPUs' % (platform.python_version(),
                                      platform.machine(), os.cpu_count()))
    print()
    print(report(rows))
    print('Total %.1f s.' % (time.perf_counter() - start))
    return 0


if __name__ == '__main__':
    sys.exit(main())
