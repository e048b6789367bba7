"""The NVIDIA GPU driver: NVIDIA display-class PCI devices from sysfs,
enriched from NVML where NVML sees them.

Every NVIDIA GPU in sysfs is reported, described by
:class:`~cyborg_nova.drivers.sysfs_devices.SysfsDevices` (so locality,
allowlist and assignability follow the same rules as the ``pci`` driver's).
GPUs bound to the ``nvidia`` kernel driver are then read from NVML: name,
UUID, memory, CUDA compute capability, MIG mode, NVLink peers, health and
load.  GPUs bound to ``vfio-pci`` (the usual passthrough set-up) are
invisible to NVML; they keep their sysfs description, named from
:data:`PRODUCTS`.  NVML is started only when a GPU is bound to ``nvidia``.

NVLink topology, for topology-aware placement, is in each GPU's
``capabilities`` (see :func:`nvlink_topology`):

* ``nvlink_peers``: sorted PCI addresses of the GPUs this GPU reaches over
  NVLink in one hop, directly or through an NVSwitch;
* ``nvlink_island``: the same value on every GPU of one NVLink-connected
  set (the lowest GPU address in it);
* ``nvlink_links``: the number of active NVLink links of the GPU;
* ``nvswitches``: PCI addresses of the NVSwitches it is linked to
  (``'unknown'`` when NVML does not say), only when it has any.
"""

import logging
import os

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import base
from cyborg_nova.drivers import sysfs_devices
from cyborg_nova import errors
from cyborg_nova import nvml as nvml_mod
from cyborg_nova.policy import classify
from cyborg_nova.policy import gpu_health

LOG = logging.getLogger(__name__)

NVIDIA_VENDOR = '10de'
DISPLAY_CLASS_PREFIX = '03'
MIB = 1024 * 1024

#: Product id -> (name, CUDA compute capability), for GPUs NVML cannot see.
PRODUCTS = {
    '2330': ('NVIDIA H100 80GB HBM3', (9, 0)),
    '2331': ('NVIDIA H100 PCIe', (9, 0)),
    '2335': ('NVIDIA H200', (9, 0)),
    '20b0': ('NVIDIA A100-SXM4-40GB', (8, 0)),
    '20b2': ('NVIDIA A100-SXM4-80GB', (8, 0)),
    '20b5': ('NVIDIA A100 80GB PCIe', (8, 0)),
    '20f1': ('NVIDIA A100-PCIE-40GB', (8, 0)),
    '20b7': ('NVIDIA A30', (8, 0)),
    '2236': ('NVIDIA A10', (8, 6)),
    '26b5': ('NVIDIA L40', (8, 9)),
    '26b9': ('NVIDIA L40S', (8, 9)),
    '27b8': ('NVIDIA L4', (8, 9)),
    '1eb8': ('Tesla T4', (7, 5)),
    '1db4': ('Tesla V100-PCIE-16GB', (7, 0)),
    '1db1': ('Tesla V100-SXM2-16GB', (7, 0)),
}

MIG_ENABLED_TRAIT = classify.custom_name('NVIDIA_MIG_ENABLED')
NVLINK_TRAIT = classify.custom_name('NVIDIA_NVLINK')

HEALTH_FROM_NVML = 'nvml'
HEALTH_FROM_SYSFS_VFIO = ('sysfs (not visible to NVML while bound to '
                          'vfio-pci)')


def is_nvidia_gpu(dev):
    return (dev.vendor_id == NVIDIA_VENDOR and
            dev.class_id.startswith(DISPLAY_CLASS_PREFIX))


class NvidiaDriver(base.AcceleratorDriver):

    name = 'nvidia'
    specificity = 10

    def __init__(self, context):
        super().__init__(context)
        self.devices = sysfs_devices.SysfsDevices(context)
        self.nvml = nvml_mod.Nvml(context.nvml)
        opts = context.conf.accelerator
        self.ignored_xids = tuple(opts.nvidia_ignored_xids)
        self.max_remapped_rows_failures = (
            opts.nvidia_max_remapped_rows_failures)
        #: Why the driver runs with less than it should (NVML missing), or
        #: None; discovery reports it.
        self.degraded = None
        self._held = {}          # address -> events held until a reset

    # -- discovery ---------------------------------------------------------

    def discover(self):
        gpus = []
        for address in self.devices.addresses():
            raw = self.devices.read(address)
            if is_nvidia_gpu(raw):
                gpus.append(self.devices.describe(address, self.name,
                                                  raw=raw))
        if any(g.kernel_driver == 'nvidia' for g in gpus):
            if not self.nvml.start():
                self.degraded = self.nvml.problem
                LOG.warning('NVIDIA GPUs bound to the nvidia driver are '
                            'described from sysfs only (no NVML memory, '
                            'health or load): %s', self.nvml.problem)
        addresses = [g.address for g in gpus]
        links = {}
        found = []
        for gpu in gpus:
            dev, gpu_links = self._describe(gpu, addresses)
            found.append(dev)
            if gpu_links:
                links[dev.address] = gpu_links
        topology = nvlink_topology(links)
        for dev in found:
            if dev.address in topology:
                dev.capabilities.update(topology[dev.address])
                dev.traits = dev.traits | {NVLINK_TRAIT}
        return found

    def _describe(self, dev, gpu_addresses):
        """(Device, NVLink links) of one GPU."""
        info = None
        if dev.kernel_driver == 'nvidia' and self.nvml.started:
            info = self.nvml.describe(dev.address, gpu_addresses)
        if info is None or not info.listed:
            return self._from_sysfs(dev, info.errors if info else ()), ()
        caps = dict(dev.capabilities, health_source=HEALTH_FROM_NVML)
        errs = list(dev.errors) + list(info.errors)
        if info.lost:
            dev.capabilities = caps
            dev.errors = tuple(errs)
            dev.health = gpu_health.decide(gpu_health.Readings(
                lost=info.lost))
            return self._named(dev, *PRODUCTS.get(dev.product_id,
                                                  ('', None))), ()
        if info.uuid:
            caps['uuid'] = info.uuid
        if info.memory_total is not None:
            caps['memory_mb'] = info.memory_total // MIB
        traits = set(dev.traits)
        if info.mig_mode is not None:
            caps['mig_capable'] = True
            caps['mig_enabled'] = bool(info.mig_mode[0])
            if caps['mig_enabled']:
                traits.add(MIG_ENABLED_TRAIT)
        else:
            caps['mig_capable'] = False
            caps['mig_enabled'] = False
        dev.capabilities = caps
        dev.traits = frozenset(traits)
        health, poll_errors = self._poll(dev.address)
        dev.health = health or dev.health
        dev.errors = tuple(errs + poll_errors)
        dev.utilization = self.nvml.utilization(dev.address)
        fallback_name, fallback_cc = PRODUCTS.get(dev.product_id,
                                                  ('', None))
        dev = self._named(dev, info.name or fallback_name,
                          info.cuda_capability or fallback_cc)
        return dev, tuple((link.remote_address, link.remote_is_switch)
                          for link in info.nvlinks)

    def _from_sysfs(self, dev, nvml_errors=()):
        """A GPU NVML does not describe: named from :data:`PRODUCTS`."""
        caps = dict(dev.capabilities)
        errs = list(dev.errors) + list(nvml_errors)
        if dev.kernel_driver == 'vfio-pci':
            caps['health_source'] = HEALTH_FROM_SYSFS_VFIO
        elif dev.kernel_driver != 'nvidia':
            caps['health_source'] = (
                'sysfs (not visible to NVML: bound to %s, not nvidia)'
                % (dev.kernel_driver or 'no kernel driver'))
        elif self.nvml.problem:
            caps['health_source'] = 'sysfs (NVML unavailable)'
            errs.append('NVML unavailable (%s): name, memory, health and load '
                        'come from sysfs only' % self.nvml.problem)
        elif not nvml_errors:
            caps['health_source'] = 'sysfs (NVML does not list it)'
            errs.append('bound to the nvidia driver but NVML does not list '
                        'it; check nvidia-smi and the kernel log (dmesg) '
                        'for this GPU')
        else:
            caps['health_source'] = 'sysfs (NVML could not look it up)'
        dev.capabilities = caps
        dev.errors = tuple(errs)
        return self._named(dev, *PRODUCTS.get(dev.product_id, ('', None)))

    @staticmethod
    def _named(dev, name, cuda_capability):
        dev.name = name or dev.name
        if cuda_capability:
            major, minor = cuda_capability
            dev.capabilities['cuda_compute_capability'] = '%d.%d' % (
                major, minor)
            dev.traits = dev.traits | {
                classify.cuda_capability_trait(major, minor)}
        return dev

    # -- readings ----------------------------------------------------------

    def _nvml_sees(self, device):
        return device.kernel_driver == 'nvidia' and self.nvml.start()

    def _poll(self, address):
        """(Health or None when NVML does not list the GPU, errors)."""
        readings, errs = self.nvml.readings(address)
        if readings is None:
            return None, errs
        self._collect_events()
        return gpu_health.decide(
            readings, self._held.get(address, ()), self.ignored_xids,
            self.max_remapped_rows_failures), errs

    def _collect_events(self):
        for address, events in self.nvml.events().items():
            if not address:
                LOG.warning('NVML delivered events for a GPU it did not '
                            'name: %s', ', '.join(
                                gpu_health.describe_event(e) for e in events))
                continue
            held = self._held.get(address, ())
            self._held[address] = gpu_health.latch(held, events,
                                                   self.ignored_xids)
            for event in self._held[address][len(held):]:
                LOG.warning('GPU %s: %s; it is reported unhealthy until it '
                            'is reset', address,
                            gpu_health.describe_event(event))

    def health(self, device):
        if self._nvml_sees(device):
            health, errs = self._poll(device.address)
            if errs:
                LOG.debug('GPU %s health poll: %s', device.address,
                          '; '.join(errs))
            if health is not None:
                return health
        held = self._held.get(device.address, ())
        if held:
            return gpu_health.decide(gpu_health.Readings(), held,
                                     self.ignored_xids)
        return device.health

    def utilization(self, device):
        if self._nvml_sees(device):
            return self.nvml.utilization(device.address)
        return device.utilization

    # -- life cycle --------------------------------------------------------

    def attach(self, device, instance_uuid):
        if not device.assignable:
            raise errors.NotAssignable(device.address, device.reasons)
        health = self.health(device)
        if not health.healthy:
            raise errors.DriverError(
                'GPU %s is not given to instance %s because it is unhealthy: '
                '%s' % (device.address, instance_uuid, health.reason))
        if not self.devices.sysfs.exists(device.address):
            raise errors.DeviceNotFound(
                'GPU %s is no longer on this host (it vanished after '
                'discovery); rescan with cyborg-nova discover'
                % device.address)
        return device_mod.PciHostdev(address=device.address)

    def uninstall(self, device):
        """Reset the GPU between tenants (sysfs ``reset``), which clears the
        events that made it unhealthy."""
        path = os.path.join(self.devices.sysfs.device_dir(device.address),
                            'reset')
        if not os.path.exists(path):
            LOG.warning('GPU %s cannot be reset between tenants: %s does not '
                        'exist', device.address, path)
            return
        try:
            self.devices.sysfs.write(path, '1')
        except OSError as exc:
            raise errors.DriverError(
                'resetting GPU %s failed: writing 1 to %s: %s; reset it by '
                'hand or reboot the host before it is used again'
                % (device.address, path, exc.strerror or exc))
        self._held.pop(device.address, None)
        self.nvml.forget(device.address)


def nvlink_topology(links):
    """NVLink capabilities of each GPU, from its active links.

    *links* maps a GPU's address to ``(remote address, remote is a switch)``
    pairs, one per active link (``is_switch`` may be None: then a remote
    that is not a GPU of *links* is taken for a switch).  GPUs linked to one
    NVSwitch are peers; a switch NVML does not name (empty or all-ones
    address, as in VMs) counts as one switch shared by every such GPU.
    Returns ``{address: {'nvlink_peers', 'nvlink_island', 'nvlink_links',
    'nvswitches'}}`` for GPUs with at least one active link.
    """
    peers = {gpu: set() for gpu in links}
    switches = {gpu: set() for gpu in links}
    for gpu, gpu_links in links.items():
        for remote, is_switch in gpu_links:
            if is_switch is None:
                is_switch = remote not in links
            if is_switch:
                switches[gpu].add(remote if _known(remote) else 'unknown')
            elif remote and remote != gpu:
                peers[gpu].add(remote)
    on_switch = {}
    for gpu, names in switches.items():
        for name in names:
            on_switch.setdefault(name, set()).add(gpu)
    for members in on_switch.values():
        for gpu in members:
            peers[gpu] |= members - {gpu}
    for gpu in list(peers):              # links are symmetric
        for peer in peers[gpu]:
            if peer in peers:
                peers[peer].add(gpu)
    result = {}
    for gpu in links:
        island = _island(gpu, peers)
        caps = {'nvlink_peers': sorted(peers[gpu]),
                'nvlink_island': min(island),
                'nvlink_links': len(links[gpu])}
        if switches[gpu]:
            caps['nvswitches'] = sorted(switches[gpu])
        result[gpu] = caps
    return result


def _known(address):
    return bool(address) and not address.startswith('ffff')


def _island(gpu, peers):
    seen = {gpu}
    todo = [gpu]
    while todo:
        for peer in peers.get(todo.pop(), ()):
            if peer not in seen:
                seen.add(peer)
                todo.append(peer)
    return seen
