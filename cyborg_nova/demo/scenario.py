"""The demo workload in Nova's functional harness, under two policies.

:class:`CyborgNovaScenario` runs on cyborg-nova's functional base (our
driver on every compute, :class:`AcceleratorNUMAFilter` and our weighers,
GPUs described by a synthetic sysfs tree per host); :class:`StockNovaScenario`
runs on Nova's own libvirt base with the stock driver and PCI passthrough
configured as Nova documents it.  Both boot :data:`WORKLOAD` on
:data:`FLEET` through the real API, conductor, scheduler and Placement, and
read every guest's placement from the guest config the driver built.

Each scenario is a unittest test case (Nova's fixtures live and die with
one); :func:`run` runs them with a plain :class:`unittest.TestResult` and
returns their :class:`~cyborg_nova.demo.report.Outcome`.  Importing this
module imports Nova: call :func:`cyborg_nova.demo.prepare_environment`
first (``python -m cyborg_nova.demo`` does).
"""

from cyborg_nova import tests as _monkey_patched  # noqa: F401  (first)

import os
import time
import unittest

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as libvirt_base
from nova.virt.libvirt import driver as libvirt_driver
from oslo_serialization import jsonutils

from cyborg_nova import demo
from cyborg_nova.demo import report
from cyborg_nova.tests.fixtures import guest_configs
from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.virt_hooks import guest_devices

H = report.Host
R = report.Request

FLEET = report.Fleet(hosts=(
    H('gpu-a', gpu_nodes=(1, 1)),
    H('gpu-b', gpu_nodes=(0, 1)),
    H('cpu-c'),
))

#: Three ordinary servers, a GPU server on shared CPUs, one on dedicated
#: CPUs, two more ordinary servers, then GPU servers for the GPUs left.
WORKLOAD = (
    R('web-1'), R('web-2'), R('web-3'),
    R('gpu-shared-1', gpus=1, vcpus=2),
    R('gpu-pinned-1', gpus=1, vcpus=2, dedicated=True),
    R('web-4'), R('web-5'),
) + tuple(R('gpu-shared-%d' % (i + 2), gpus=1, vcpus=2)
          for i in range(FLEET.gpus - 2))

NVIDIA = '10de'
H100 = '2330'
NO_VALID_HOST = 'No valid host'

#: How long one server may take to become ACTIVE or ERROR, in seconds.
BOOT_TIMEOUT = 60

#: Outcomes of the last runs, by scenario class name.
RESULTS = {}


class _Scenario(object):
    """The workload, whatever the policy.  Mixed into a harness base."""

    POLICY = None
    DESCRIPTION = None
    fleet = FLEET
    workload = WORKLOAD

    def setUp(self):
        try:
            super().setUp()
        except BaseException:
            self._write_log()
            raise
        # Nova's base deletes the test's attributes at cleanup: write the
        # log before that (cleanups run last in, first out).
        self.addCleanup(self._write_log)
        self.flags(cores=-1, ram=-1, instances=-1, group='quota')
        self.flags(cpu_allocation_ratio=self.fleet.cpu_allocation_ratio)
        self.flags(cpu_shared_set=report.cpu_ranges(self.fleet.shared_cpus),
                   cpu_dedicated_set=report.cpu_ranges(
                       self.fleet.dedicated_cpus),
                   group='compute')

    #: Where to write Nova's log of this run; None: nowhere (as a test).
    _log_file = None

    def _write_log(self):
        stdlog = getattr(self, 'stdlog', None)
        if self._log_file is None or stdlog is None:
            return
        with open(self._log_file, 'w') as f:
            f.write(stdlog.logger.output)

    # -- what each policy provides ---------------------------------------

    def start_host(self, host):
        raise NotImplementedError

    def flavor_specs(self, request):
        raise NotImplementedError

    def guest_config(self, server):
        return self.guest_configs[server['id']][-1]

    # -- the run ---------------------------------------------------------

    def run_workload(self):
        """Start the fleet, boot the workload; return the Outcome."""
        for host in self.fleet.hosts:
            self.start_host(host)
        flavors = {}
        placed = []
        for request in self.workload:
            key = (request.gpus, request.dedicated, request.vcpus,
                   request.memory_mb)
            if key not in flavors:
                flavors[key] = self._create_flavor(
                    vcpu=request.vcpus, memory_mb=request.memory_mb,
                    extra_spec=self.flavor_specs(request))
            free = self.fleet.gpus - sum(
                p.request.gpus for p in placed if p.outcome == report.ACTIVE)
            room = not request.gpus and any(
                self._has_room(h.name, flavors[key])
                for h in self.fleet.hosts if not h.gpus)
            placed.append(self._boot(request, flavors[key], free, room))
        return report.Outcome(self.POLICY, self.DESCRIPTION, tuple(placed))

    def run_demo(self):
        RESULTS[type(self).__name__] = self.run_workload()

    def _boot(self, request, flavor, free_gpus, room):
        server = self.api.post_server({'server': self._build_server(
            name=request.name, flavor_id=flavor, networks='none')})
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            server = self.admin_api.get_server(server['id'])
            if server['status'] == 'ACTIVE' or (
                    server['status'] == 'ERROR' and 'fault' in server):
                break
            if time.monotonic() > deadline:
                self.fail('%s still %s after %d s' % (
                    request.name, server['status'], BOOT_TIMEOUT))
            time.sleep(0.05)
        common = dict(request=request, free_gpus_before=free_gpus,
                      cpu_host_had_room=room)
        if server['status'] == 'ERROR':
            fault = server['fault']['message']
            return report.Placed(
                outcome=(report.REFUSED if NO_VALID_HOST in fault
                         else report.FAILED), fault=fault, **common)
        host = server['OS-EXT-SRV-ATTR:host']
        cfg = self.guest_config(server)
        nodes = self.fleet.host(host).gpu_addresses()
        devices = tuple((a, nodes.get(a)) for a in
                        self.hostdev_addresses(cfg))
        pinned = set()
        if cfg.cputune is not None:
            for pin in cfg.cputune.vcpupin:
                pinned |= set(pin.cpuset)
        cpus = pinned or cfg.cpuset
        memory = None
        if cfg.numatune is not None and cfg.numatune.memory is not None:
            memory = frozenset(cfg.numatune.memory.nodeset)
        return report.Placed(
            outcome=report.ACTIVE, host=host, devices=devices,
            cpus=None if cpus is None else frozenset(cpus),
            pinned=bool(pinned), memory_nodes=memory, **common)

    def _has_room(self, hostname, flavor_id):
        """Whether Placement has room on *hostname* for the flavor."""
        flavor = self.api.get_flavor(flavor_id)
        wanted = {'VCPU': flavor['vcpus'],
                  'MEMORY_MB': flavor['ram'],
                  'DISK_GB': flavor['disk'] + flavor.get(
                      'OS-FLV-EXT-DATA:ephemeral', 0)}
        rp = self.compute_rp_uuids[hostname]
        inventories = self.placement.get(
            '/resource_providers/%s/inventories' % rp).body['inventories']
        usages = self.placement.get(
            '/resource_providers/%s/usages' % rp).body['usages']
        for rc, amount in wanted.items():
            inv = inventories.get(rc)
            if inv is None:
                return False
            capacity = (inv['total'] - inv['reserved']) * \
                inv['allocation_ratio']
            if capacity - usages.get(rc, 0) < amount:
                return False
        return True


class CyborgNovaScenario(_Scenario, gpu_base.GPUTestBase):

    POLICY = 'cyborg-nova'
    DESCRIPTION = ('compute_driver = cyborg_nova.AcceleratedLibvirtDriver; '
                   'filters + AcceleratorNUMAFilter, '
                   'AcceleratorAwareNUMATopologyFilter; '
                   'weighers + cyborg_nova.weighers.all_weighers; GPU '
                   'flavors resources:PGPU=1')
    ADDITIONAL_FILTERS = ['AcceleratorNUMAFilter',
                          'AcceleratorAwareNUMATopologyFilter']

    def start_host(self, host):
        self.start_gpu_compute(host.name, gpu_nodes=list(host.gpu_nodes),
                               nodes=self.fleet.nodes,
                               cpus_per_node=self.fleet.cpus_per_node)

    def flavor_specs(self, request):
        specs = {}
        if request.gpus:
            specs['resources:PGPU'] = str(request.gpus)
        if request.dedicated:
            specs['hw:cpu_policy'] = 'dedicated'
        return specs


class StockNovaScenario(_Scenario, libvirt_base.ServersTestBase):

    POLICY = 'stock Nova 34'
    DESCRIPTION = ('[pci] device_spec 10de:2330 + alias gpu; GPU flavors '
                   'pci_passthrough:alias=gpu:1; filters + '
                   'PciPassthroughFilter, NUMATopologyFilter; default '
                   'weighers; LibvirtDriver')
    ADDITIONAL_FILTERS = ['PciPassthroughFilter', 'NUMATopologyFilter']
    microversion = 'latest'

    def setUp(self):
        # As Nova's own PCI tests: the alias must be set before the API
        # and the scheduler read it.
        self.flags(
            device_spec=[jsonutils.dumps(
                {'vendor_id': NVIDIA, 'product_id': H100})],
            alias=[jsonutils.dumps(
                {'vendor_id': NVIDIA, 'product_id': H100, 'name': 'gpu',
                 'device_type': 'type-PCI'})],
            group='pci')
        super().setUp()
        self.guest_configs = self.useFixture(
            guest_configs.GuestConfigCapture(
                libvirt_driver.LibvirtDriver,
                'nova.virt.libvirt.driver.LibvirtDriver')).configs

    def start_host(self, host):
        pci_info = fakelibvirt.HostPCIDevicesInfo(
            num_pci=0, num_pfs=0, num_vfs=0)
        for index, node in enumerate(host.gpu_nodes):
            pci_info.add_device(
                dev_type='PCI', bus=0x10 * (index + 1), slot=0, function=0,
                iommu_group=101 + 2 * index, numa_node=node,
                vend_id=NVIDIA, vend_name='NVIDIA Corporation',
                prod_id=H100, prod_name='GH100 [H100 SXM5 80GB HBM3]',
                driver_name='vfio-pci')
        info = fakelibvirt.HostInfo(
            cpu_nodes=self.fleet.nodes, cpu_sockets=1,
            cpu_cores=self.fleet.cpus_per_node, cpu_threads=1,
            kB_mem=16 * 1024 * 1024)
        self.start_compute(host.name, host_info=info,
                           pci_info=pci_info if host.gpus else None)

    def flavor_specs(self, request):
        specs = {}
        if request.gpus:
            specs['pci_passthrough:alias'] = 'gpu:%d' % request.gpus
        if request.dedicated:
            specs['hw:cpu_policy'] = 'dedicated'
        return specs

    def hostdev_addresses(self, cfg):
        return guest_devices.pci_addresses_in_config(cfg)


SCENARIOS = (CyborgNovaScenario, StockNovaScenario)


class ScenarioFailed(Exception):

    def __init__(self, scenario, details, log_path):
        self.scenario = scenario
        self.details = details
        self.log_path = log_path
        super().__init__('%s failed: %s (Nova log: %s)' % (
            scenario.POLICY, details, log_path))


def run(scenarios=SCENARIOS, fleet=FLEET):
    """Run each scenario; return their Outcomes in order.

    Raises :class:`ScenarioFailed` (with the test's error and the path of
    Nova's log) when one does not complete.
    """
    outcomes = []
    os.makedirs(demo.log_dir(), exist_ok=True)
    for cls in scenarios:
        RESULTS.pop(cls.__name__, None)
        result = unittest.TestResult()
        case = cls('run_demo')
        case.fleet = fleet
        case._log_file = os.path.join(demo.log_dir(),
                                      '%s.log' % cls.__name__)
        case.run(result)
        problems = result.errors + result.failures
        if problems or cls.__name__ not in RESULTS:
            details = problems[0][1] if problems else 'no result'
            raise ScenarioFailed(cls, details.strip(), case._log_file)
        outcomes.append(RESULTS[cls.__name__])
    return outcomes
