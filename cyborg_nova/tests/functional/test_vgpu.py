"""vGPUs (mdevs) through the real Nova API, scheduler, Placement and
compute: a parent's vGPU capacity is its inventory, a server gets an mdev
of its own on the parent Placement allocated, NUMA-local, keeps it across a
hard reboot and gives it back when deleted.

The sysfs tree is synthetic; :class:`EmulatedMdevKernel` does what the
kernel does when an mdev is created or removed."""

import os

from nova.virt.libvirt import config as vconfig

from cyborg_nova.drivers import mdev as mdev_driver
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import mdev_kernel
from cyborg_nova.tests.functional import gpu_base

GPU = '0000:10:00.0'                # on NUMA node 1 (CPUs 4-7)
PROVIDER = 'host1_VGPU_10de_1eb8_NUMA1'
MDEV_TYPES = {'nvidia-222': {'name': 'GRID T4-1B',
                             'available_instances': 16},
              'nvidia-223': {'name': 'GRID T4-2B',
                             'available_instances': 8}}


class TestVGPU(gpu_base.GPUTestBase):

    def setUp(self):
        super().setUp()
        self.useFixture(mdev_kernel.EmulatedMdevKernel())
        self.flags(enabled_drivers=['pci', 'mdev', 'numa_pinning'],
                   enabled_mdev_types=['nvidia-223'], group='accelerator')
        # Nova's own vGPU support stays off: the mdevs are ours.
        self.assertEqual([], gpu_base.CONF.devices.enabled_mdev_types)
        self.start_gpu_compute('host1', gpu_nodes=[1], product=hosts.T4,
                               kernel_driver='nvidia', mdev_types=MDEV_TYPES)
        self.sysfs_root = gpu_base.CONF.accelerator.sysfs_root
        self.flavor = self._create_flavor(
            vcpu=2, memory_mb=1024, extra_spec={'resources:VGPU': '1'})

    def mdevs(self):
        return mdev_kernel.EmulatedMdevKernel.mdevs(self.sysfs_root)

    def available(self):
        """``available_instances`` of the enabled type on the GPU."""
        path = os.path.join(self.sysfs_root, 'bus', 'pci', 'devices', GPU,
                            'mdev_supported_types', 'nvidia-223',
                            'available_instances')
        with open(path) as f:
            return int(f.read())

    def vgpu_provider(self):
        rp_uuid = self.compute_rp_uuids['host1']
        tree = self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
        return {rp['name']: rp['uuid'] for rp in tree
                if rp['uuid'] != rp_uuid}

    def vgpus_used(self):
        return {name: self.placement.get(
            '/resource_providers/%s/usages' % uuid).body['usages'].get(
                'VGPU', 0)
            for name, uuid in self.vgpu_provider().items()}

    def guest_mdevs(self, cfg):
        return [d.uuid for d in cfg.devices
                if isinstance(d, vconfig.LibvirtConfigGuestHostdevMDEV)]

    def test_vgpu_server_boots_reboots_and_gives_its_mdev_back(self):
        # The parent is one provider whose total is its vGPU capacity.
        providers = self.vgpu_provider()
        self.assertEqual([PROVIDER], list(providers))
        inv = self.placement.get('/resource_providers/%s/inventories'
                                 % providers[PROVIDER]).body['inventories']
        self.assertEqual({'VGPU'}, set(inv))
        self.assertEqual((8, 0), (inv['VGPU']['total'],
                                  inv['VGPU']['reserved']))

        server = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual('ACTIVE', server['status'])
        mine = mdev_driver.mdev_uuid(server['id'], GPU, 0)
        self.assertEqual([mine], self.mdevs())
        self.assertEqual(7, self.available())
        cfg = self.last_config(server)
        self.assertEqual([mine], self.guest_mdevs(cfg))
        self.assertEqual([], self.hostdev_addresses(cfg))
        self.assertEqual({4, 5, 6, 7}, cfg.cpuset)
        self.assertEqual([1], cfg.numatune.memory.nodeset)
        self.assertEqual({PROVIDER: 1}, self.vgpus_used())

        # Hard reboot rebuilds the XML: the same mdev, no second one.
        server = self._reboot_server(server, hard=True)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(2, len(self.guest_configs[server['id']]))
        self.assertEqual([mine], self.guest_mdevs(self.last_config(server)))
        self.assertEqual([mine], self.mdevs())
        self.assertEqual(7, self.available())

        self._delete_server(server)
        self.assertEqual([], self.mdevs())
        self.assertEqual(8, self.available())
        self.assertEqual({PROVIDER: 0}, self.vgpus_used())

    def test_servers_share_a_parent_up_to_its_capacity(self):
        servers = [self._create_server(flavor_id=self.flavor,
                                       networks='none') for _ in range(2)]
        self.assertEqual(['ACTIVE'] * 2, [s['status'] for s in servers])
        expected = sorted(mdev_driver.mdev_uuid(s['id'], GPU, 0)
                          for s in servers)
        self.assertEqual(expected, self.mdevs())
        self.assertEqual({PROVIDER: 2}, self.vgpus_used())
        # A restarted compute counts the mdevs the guests hold, and its
        # start-up reconciliation finds nothing wrong with them.
        self._restart_compute('host1')
        driver = self.driver_of('host1')
        guests = driver._guest_devices()
        self.assertEqual({s['id']: [GPU] for s in servers}, guests)
        self.assertEqual([(8, 2)], [(g.total, g.in_use)
                                    for g in driver.accelerators.groups(
                                        guests)])
        self.assertEqual([], [line for line in
                              self.stdlog.logger.output.splitlines()
                              if 'ERROR [cyborg_nova' in line])
        self.assertEqual(expected, self.mdevs())
        self.assertEqual({PROVIDER: 2}, self.vgpus_used())

    def _restart_compute(self, hostname):
        """Nova's ``restart_compute_service``, keeping the fake hypervisor
        (the domains)."""
        compute = self.computes.pop(hostname)
        self.compute_rp_uuids.pop(hostname)
        compute.stop()
        cell = self.host_mappings[compute.host].cell_mapping.name
        connection = compute.manager.driver._get_connection()
        self.start_compute(hostname, cell_name=cell, connection=connection)


P1, P2 = '0000:10:00.0', '0000:20:00.0'     # gpu_host's first two GPUs
H100_TYPES = {'nvidia-700': {'name': 'NVIDIA H100-20C',
                             'available_instances': 4}}


class TestVGPULoad(gpu_base.GPUTestBase):
    """Time-sliced vGPUs go to the least loaded GPU, on the least loaded
    host, by the load NVML reports (the ``nvidia`` driver reads it, the
    ``mdev`` driver describes the parents)."""

    def setUp(self):
        super().setUp()
        self.useFixture(mdev_kernel.EmulatedMdevKernel())
        self.flags(enabled_drivers=['pci', 'nvidia', 'mdev', 'numa_pinning'],
                   enabled_mdev_types=['nvidia-700'], group='accelerator')
        self.flavor = self._create_flavor(
            vcpu=1, memory_mb=512, extra_spec={'resources:VGPU': '1'})
        self.roots = {}

    def start_vgpu_host(self, hostname, gpu_nodes):
        self.start_gpu_compute(hostname, gpu_nodes=gpu_nodes,
                               product=hosts.H100, kernel_driver='nvidia',
                               mdev_types=H100_TYPES)
        self.roots[hostname] = gpu_base.CONF.accelerator.sysfs_root
        nvml = fake_nvml.h100s([P1, P2][:len(gpu_nodes)])
        self.use_nvml(hostname, nvml)
        return nvml

    @staticmethod
    def set_load(nvml, address, percent):
        nvml.set_answer(address, 'utilization',
                        {'gpu': percent, 'memory': 0})

    def parent_of(self, server, hostname):
        mdevs = mdev_kernel.EmulatedMdevKernel.mdevs(self.roots[hostname])
        for address in (P1, P2):
            if mdev_driver.mdev_uuid(server['id'], address, 0) in mdevs:
                return address
        self.fail('server %s has no mdev on %s' % (server['id'], hostname))

    def test_a_vgpu_goes_to_the_least_loaded_gpu_of_its_group(self):
        nvml = self.start_vgpu_host('host1', gpu_nodes=[1, 1])
        self.set_load(nvml, P1, 85)
        self._run_periodics()
        # Both parents sit in one NUMA-1 group: one provider of 8 vGPUs,
        # its load the mean the host reports to the scheduler (the busier
        # of compute and memory: the idle GPU has 0.6 % of memory in use).
        driver = self.driver_of('host1')
        [group] = driver.accelerators.groups(driver._guest_devices())
        self.assertEqual(8, group.total)
        self.assertAlmostEqual((85 + 0.59) / 2, group.load, places=1)

        first = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual(P2, self.parent_of(first, 'host1'))

        # The load moves: the next vGPU follows it.
        self.set_load(nvml, P1, 5)
        self.set_load(nvml, P2, 95)
        self._run_periodics()
        second = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual(P1, self.parent_of(second, 'host1'))
        self.assertEqual({4, 5, 6, 7}, self.last_config(second).cpuset)

    def test_a_vgpu_goes_to_the_least_loaded_host(self):
        busy = self.start_vgpu_host('host1', gpu_nodes=[1])
        idle = self.start_vgpu_host('host2', gpu_nodes=[1])
        self.set_load(busy, P1, 90)
        self._run_periodics()
        first = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual('host2', first['OS-EXT-SRV-ATTR:host'])
        # host2 now has fewer free vGPUs (3 against 4), but host1's GPU is
        # busy: by free count alone the next one would go to host1.
        self._run_periodics()
        second = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual('host2', second['OS-EXT-SRV-ATTR:host'])

        self.set_load(busy, P1, 10)
        self.set_load(idle, P1, 90)
        self._run_periodics()
        third = self._create_server(flavor_id=self.flavor, networks='none')
        self.assertEqual('host1', third['OS-EXT-SRV-ATTR:host'])
