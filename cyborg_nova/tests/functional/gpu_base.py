"""Functional-test base for GPU hosts: each compute gets a synthetic sysfs
tree whose GPUs sit on the NUMA nodes the test names, laid out like the
fake libvirt host's CPUs, and every guest config our driver builds is kept
and validated against libvirt's own schema."""

import os
import subprocess
import tempfile

import fixtures
from nova import conf as nova_conf
from nova.tests.fixtures import libvirt as fakelibvirt

from cyborg_nova.tests.fixtures import guest_configs
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.functional import base
from cyborg_nova.virt_hooks import driver as cn_driver

CONF = nova_conf.CONF

#: What an operator writes to make our filters available.
FILTER_PATH = 'cyborg_nova.filters.all_filters'
WEIGHERS = ['nova.scheduler.weights.all_weighers',
            'cyborg_nova.weighers.all_weighers']


def validate_domain_xml(xml):
    """Run libvirt's ``virt-xml-validate`` on a domain XML; return its
    complaint or None."""
    with tempfile.NamedTemporaryFile('w', suffix='.xml') as f:
        f.write(xml)
        f.flush()
        proc = subprocess.run(['virt-xml-validate', f.name, 'domain'],
                              capture_output=True, text=True)
    if proc.returncode:
        return (proc.stdout + proc.stderr).strip()
    return None


class GPUTestBase(base.AcceleratorTestBase):

    ADDITIONAL_AVAILABLE_FILTERS = [FILTER_PATH]
    #: As operators enable them: ours last, the NUMA one in place of Nova's
    #: NUMATopologyFilter (which Nova's defaults and harness leave out; it
    #: is dropped below should they ever enable it).
    ADDITIONAL_FILTERS = ['AcceleratorNUMAFilter',
                          'AcceleratorAwareNUMATopologyFilter']
    CPUS_PER_NODE = 4

    def setUp(self):
        super().setUp()
        self.guest_configs = self.useFixture(
            guest_configs.GuestConfigCapture(
                cn_driver.AcceleratedLibvirtDriver,
                'cyborg_nova.virt_hooks.driver.AcceleratedLibvirtDriver',
            )).configs
        self.flags(enabled_drivers=['pci', 'numa_pinning'],
                   group='accelerator')
        # The per-instance lock shared with cyborg-nova attach/detach is an
        # external (file) lock; Nova's harness sets no lock_path.
        self.flags(lock_path=self.useFixture(fixtures.TempDir()).path,
                   group='oslo_concurrency')

    def _setup_scheduler_service(self):
        # Weighers are loaded when the scheduler starts.
        self.flags(weight_classes=WEIGHERS, group='filter_scheduler')
        self.flags(enabled_filters=[
            f for f in CONF.filter_scheduler.enabled_filters
            if f != 'NUMATopologyFilter'], group='filter_scheduler')
        return super()._setup_scheduler_service()

    def start_gpu_compute(self, hostname, gpu_nodes, nodes=2,
                          cpus_per_node=None, kB_mem=16 * 1024 * 1024,
                          **gpu_args):
        """Start a compute with GPUs on the given NUMA nodes (a list, one
        entry per GPU); *gpu_args* go to :func:`hosts.gpu_host` (product,
        kernel driver, mdev types)."""
        cpus_per_node = cpus_per_node or self.CPUS_PER_NODE
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'sys')
        os.makedirs(root)
        hosts.gpu_host(root, gpu_nodes, cpus_per_node=cpus_per_node,
                       nodes=nodes, **gpu_args)
        self.flags(sysfs_root=root, group='accelerator')
        info = fakelibvirt.HostInfo(
            cpu_nodes=nodes, cpu_sockets=1, cpu_cores=cpus_per_node,
            cpu_threads=1, kB_mem=kB_mem)
        return self.start_compute(hostname, host_info=info)

    def allow_moves(self):
        """What Nova's own vGPU tests stub to let the libvirt driver
        resize and migrate over fake libvirt (no disks to move)."""
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.LibvirtDriver._get_instance_disk_info',
            return_value=[]))
        self.useFixture(fixtures.MockPatch('os.rename'))

    def host_of(self, server):
        return self._show_server(server)['OS-EXT-SRV-ATTR:host']

    def restart_gpu_compute(self, host, host_boot=False):
        """Restart nova-compute on *host*; with *host_boot*, as after a
        host reboot: its guests are defined but not running."""
        driver = self.driver_of(host)
        if host_boot:
            conn = driver._host.get_connection()
            for dom in conn.listAllDomains(
                    fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                dom.destroy()
        # The new driver reads its devices from the same synthetic tree.
        self.flags(sysfs_root=driver.accelerators.sysfs_root,
                   group='accelerator')
        # Nova's restart_compute_service, through our start_compute: a new
        # service and manager on the same fake libvirt connection.
        compute = self.computes.pop(host)
        self.compute_rp_uuids.pop(host)
        compute.stop()
        self.start_compute(
            host, connection=driver._get_connection(),
            cell_name=self.host_mappings[host].cell_mapping.name)

    def confirm(self, server, source):
        # libvirt's _cleanup_resize compares the instance's host with
        # CONF.host, which Nova's harness shares between computes: it must
        # name the source host while it confirms (as Nova's vGPU tests do).
        harness_host = CONF.host
        self.flags(host=source)
        try:
            return self._confirm_resize(server)
        finally:
            self.flags(host=harness_host)

    def use_nvml(self, hostname, nvml):
        """Give a started compute's drivers *nvml* (a fake: CI machines
        have no NVIDIA driver), rediscover its devices and report them."""
        accelerators = self.driver_of(hostname).accelerators
        accelerators._nvml = nvml
        accelerators._drivers = None         # reload them with this NVML
        accelerators.refresh()
        self._run_periodics()

    def gpu_flavor(self, gpus=1, vcpus=2, memory_mb=1024, **extra):
        specs = {'resources:PGPU': str(gpus)} if gpus else {}
        specs.update(extra)
        return self._create_flavor(vcpu=vcpus, memory_mb=memory_mb,
                                   extra_spec=specs)

    def last_config(self, server):
        configs = self.guest_configs[server['id']]
        self.assertTrue(configs, 'no guest config was built')
        cfg = configs[-1]
        problem = validate_domain_xml(cfg.to_xml())
        self.assertIsNone(problem, 'virt-xml-validate refused the XML')
        return cfg

    def hostdev_addresses(self, cfg):
        from cyborg_nova.virt_hooks import guest_devices
        return guest_devices.pci_addresses_in_config(cfg)

    def gpu_usage(self, hostname):
        """``{provider name: used PGPU}`` of a host's GPU providers."""
        rp_uuid = self.compute_rp_uuids[hostname]
        tree = self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
        usage = {}
        for rp in tree:
            if rp['uuid'] == rp_uuid:
                continue
            used = self.placement.get(
                '/resource_providers/%s/usages' % rp['uuid']).body['usages']
            usage[rp['name']] = used.get('PGPU', 0)
        return usage
