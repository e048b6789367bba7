"""vGPUs (mdevs) through the real Nova API, scheduler, Placement and
compute: a parent's vGPU capacity is its inventory, a server gets an mdev
of its own on the parent Placement allocated, NUMA-local, keeps it across a
hard reboot and gives it back when deleted.

The sysfs tree is synthetic; :class:`EmulatedMdevKernel` does what the
kernel does when an mdev is created or removed."""

import errno
import os

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import config as vconfig

from cyborg_nova import attach
from cyborg_nova.drivers import mdev as mdev_driver
from cyborg_nova import errors
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import mdev_kernel
from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.tests.functional import test_attach
from cyborg_nova.virt_hooks import guest_devices
from cyborg_nova.virt_hooks import instance_record

GPU = '0000:10:00.0'                # on NUMA node 1 (CPUs 4-7)
PROVIDER = 'host1_VGPU_10de_1eb8_nvidia-223_NUMA1'
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
        self.restart_gpu_compute('host1')
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

    def test_restart_heals_the_lost_record_of_a_vgpu_server(self):
        server = self._create_server(flavor_id=self.flavor, networks='none')
        ctx = nova_context.get_admin_context()

        def record(addresses=None):
            inst = objects.Instance.get_by_uuid(
                ctx, server['id'], expected_attrs=['system_metadata'])
            if addresses is not None:
                instance_record.record(inst, 'host1', addresses)
                inst.save()
            return instance_record.devices_on(inst, 'host1')

        self.assertEqual([GPU], record())
        record([])
        self.restart_gpu_compute('host1')
        self.assertEqual([GPU], record())
        self.assertIn('the record now says what the guest holds',
                      self.stdlog.logger.output)
        self.assertEqual([], [line for line in
                              self.stdlog.logger.output.splitlines()
                              if 'ERROR [cyborg_nova' in line])


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

    def test_a_parent_nvml_finds_lost_is_reserved_and_skipped(self):
        nvml = self.start_vgpu_host('host1', gpu_nodes=[1, 1])
        # NVML loses P2 (XID 79, fallen off the bus): the nvidia driver's
        # health reaches the parent the mdev driver describes.
        nvml.fail_device(P2)
        self._run_periodics()
        rp_uuid = self.compute_rp_uuids['host1']
        [provider] = [rp['uuid'] for rp in self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
            if rp['uuid'] != rp_uuid]
        inv = self.placement.get('/resource_providers/%s/inventories'
                                 % provider).body['inventories']['VGPU']
        self.assertEqual((8, 4), (inv['total'], inv['reserved']))
        servers = [self._create_server(flavor_id=self.flavor,
                                       networks='none') for _ in range(2)]
        self.assertEqual([P1, P1], [self.parent_of(s, 'host1')
                                    for s in servers])

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


class TestVGPUMoves(gpu_base.GPUTestBase):
    """A vGPU server keeps one mdev, on the host it runs on, NUMA-local,
    through cold migration, resize (revert and confirm), shelve-offload
    and unshelve, evacuation and a host reboot; the host it left removes
    its mdev, and Placement counts only what the hosts hold.

    hostA's GPU is on NUMA node 1 (CPUs 4-7), hostB's on node 0 (0-3);
    both GPUs are at 0000:10:00.0, so a server's mdev UUID is the same on
    either host (derived from server, parent address and index)."""

    ADMIN_API = True

    def setUp(self):
        super().setUp()
        self.allow_moves()
        self.useFixture(mdev_kernel.EmulatedMdevKernel())
        self.flags(enabled_drivers=['pci', 'mdev', 'numa_pinning'],
                   enabled_mdev_types=['nvidia-223'], group='accelerator')
        self.roots = {}
        for host, node in (('hostA', 1), ('hostB', 0)):
            self.start_gpu_compute(host, gpu_nodes=[node], product=hosts.T4,
                                   kernel_driver='nvidia',
                                   mdev_types=MDEV_TYPES)
            self.roots[host] = gpu_base.CONF.accelerator.sysfs_root
        self.one = self._create_flavor(
            vcpu=2, memory_mb=1024, extra_spec={'resources:VGPU': '1'})
        self.two = self._create_flavor(
            vcpu=2, memory_mb=1024, extra_spec={'resources:VGPU': '2'})

    def mdevs(self, host):
        return mdev_kernel.EmulatedMdevKernel.mdevs(self.roots[host])

    def vgpus_used(self, host):
        rp_uuid = self.compute_rp_uuids[host]
        tree = self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
        return sum(self.placement.get(
            '/resource_providers/%s/usages' % rp['uuid']).body[
                'usages'].get('VGPU', 0)
            for rp in tree if rp['uuid'] != rp_uuid)

    def mine(self, server, count=1):
        return sorted(mdev_driver.mdev_uuid(server['id'], GPU, i)
                      for i in range(count))

    def assertOn(self, server, host, count=1):
        """*server* runs on *host* with *count* mdevs of its own, NUMA-
        local, and no host holds or counts anything else for it."""
        node = {'hostA': 1, 'hostB': 0}[host]
        other = {'hostA': 'hostB', 'hostB': 'hostA'}[host]
        self.assertEqual(host, self.host_of(server))
        cfg = self.last_config(server)
        self.assertEqual(self.mine(server, count),
                         sorted(d.uuid for d in cfg.devices if isinstance(
                             d, vconfig.LibvirtConfigGuestHostdevMDEV)))
        self.assertEqual({0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}[node],
                         cfg.cpuset)
        self.assertEqual(self.mine(server, count), self.mdevs(host))
        self.assertEqual(count, self.vgpus_used(host))
        self.assertEqual([], self.mdevs(other), other)
        self.assertEqual(0, self.vgpus_used(other), other)

    def test_migrate_resize_revert_confirm_and_shelve(self):
        server = self._create_server(flavor_id=self.one, networks='none',
                                     host='hostA')
        self.assertOn(server, 'hostA')

        # Cold migration: the source keeps its mdev (and Placement its
        # vGPU) for a revert until the move is confirmed.
        server = self._migrate_server(server, host='hostB')
        self.assertEqual(self.mine(server), self.mdevs('hostA'))
        self.assertEqual((1, 1), (self.vgpus_used('hostA'),
                                  self.vgpus_used('hostB')))
        server = self.confirm(server, 'hostA')
        self.assertOn(server, 'hostB')

        # Resize to two vGPUs (onto hostA), revert: back on hostB with the
        # same mdev; hostA's two are removed.
        server = self._resize_server(server, self.two)
        self.assertEqual('hostA', self.host_of(server))
        self.assertEqual(self.mine(server, 2), self.mdevs('hostA'))
        self.assertEqual((2, 1), (self.vgpus_used('hostA'),
                                  self.vgpus_used('hostB')))
        server = self._revert_resize(server)
        self.assertOn(server, 'hostB')

        # Resize again, confirmed this time.
        server = self._resize_server(server, self.two)
        server = self.confirm(server, 'hostB')
        self.assertOn(server, 'hostA', count=2)

        # Shelve-offload gives every mdev back; unshelve makes new ones.
        self._shelve_server(server)
        for host in ('hostA', 'hostB'):
            self.assertEqual(([], 0), (self.mdevs(host),
                                       self.vgpus_used(host)), host)
        self.api.post_server_action(server['id'],
                                    {'unshelve': {'host': 'hostB'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertOn(server, 'hostB', count=2)

        self._delete_server(server)
        for host in ('hostA', 'hostB'):
            self.assertEqual(([], 0), (self.mdevs(host),
                                       self.vgpus_used(host)), host)

    def test_evacuate_then_the_source_comes_back(self):
        server = self._create_server(flavor_id=self.one, networks='none',
                                     host='hostA')
        self.computes['hostA'].stop()
        service = self.admin_api.get_services(
            host='hostA', binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'forced_down': True})
        server = self._evacuate_server(server, expected_host='hostB')
        self.assertEqual(self.mine(server), self.mdevs('hostB'))
        # hostA is down: its mdev and allocation wait for it.
        self.assertEqual(self.mine(server), self.mdevs('hostA'))

        self.restart_gpu_compute('hostA')
        self.admin_api.put_service(service['id'], {'forced_down': False})
        self.assertOn(server, 'hostB')

    def test_host_reboot_recreates_the_mdev(self):
        self.flags(resume_guests_state_on_host_boot=True)
        server = self._create_server(flavor_id=self.two, networks='none',
                                     host='hostA')
        self.assertOn(server, 'hostA', count=2)
        configs = len(self.guest_configs[server['id']])

        # mdevs do not survive a host reboot; the guest comes back with
        # the same two, made again before its domain starts.
        kernel = mdev_kernel.EmulatedKernel(self.roots['hostA'])
        kernel.reboot()
        self.assertEqual([], self.mdevs('hostA'))
        self.restart_gpu_compute('hostA', host_boot=True)
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(configs + 1, len(self.guest_configs[server['id']]))
        self.assertOn(server, 'hostA', count=2)


class TestVGPUAttach(gpu_base.GPUTestBase):
    """``cyborg-nova attach|detach`` with vGPUs: an mdev made for the
    running server on the least used parent of the group, hot-plugged,
    allocated and recorded; kept by a hard reboot; detached one at a time;
    undone whole when the kernel refuses the mdev.

    host1 has two T4s on NUMA node 1 (P1, P2): one VGPU provider of 16."""

    def setUp(self):
        super().setUp()
        self.useFixture(mdev_kernel.EmulatedMdevKernel())
        self.useFixture(mdev_kernel.MdevHotplug())
        self.flags(enabled_drivers=['pci', 'mdev', 'numa_pinning'],
                   enabled_mdev_types=['nvidia-223'], group='accelerator')
        self.start_gpu_compute('host1', gpu_nodes=[1, 1], product=hosts.T4,
                               kernel_driver='nvidia', mdev_types=MDEV_TYPES)
        self.root = gpu_base.CONF.accelerator.sysfs_root
        self.ctx = nova_context.get_admin_context()

    def server(self, **specs):
        flavor = self._create_flavor(vcpu=2, memory_mb=1024,
                                     extra_spec=specs)
        return self._create_server(flavor_id=flavor, networks='none')

    def instance(self, server):
        return objects.Instance.get_by_uuid(
            self.ctx, server['id'],
            expected_attrs=['flavor', 'numa_topology', 'system_metadata'])

    def attach(self, server, count=1):
        return attach.attach(self.driver_of('host1'), self.ctx,
                             self.instance(server), {'VGPU': count})

    def detach(self, server, address=None):
        return attach.detach(self.driver_of('host1'), self.ctx,
                             self.instance(server), address)

    def state(self, server):
        """(mdevs in the guest's live domain, mdevs in sysfs, VGPU used in
        Placement, recorded parents)."""
        guest = self.driver_of('host1')._host.get_guest(
            self.instance(server))
        rp_uuid = self.compute_rp_uuids['host1']
        [provider] = [rp['uuid'] for rp in self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
            if rp['uuid'] != rp_uuid]
        used = self.placement.get('/resource_providers/%s/usages'
                                  % provider).body['usages'].get('VGPU', 0)
        return (sorted(guest_devices.mdev_uuids_in(guest)),
                mdev_kernel.EmulatedMdevKernel.mdevs(self.root), used,
                instance_record.devices_on(self.instance(server), 'host1'))

    def mdev(self, server, parent, index=0):
        return mdev_driver.mdev_uuid(server['id'], parent, index)

    def test_attach_then_detach_a_vgpu_on_a_vgpu_server(self):
        server = self.server(**{'resources:VGPU': '1'})
        first = self.mdev(server, P1)
        self.assertEqual(([first], [first], 1, [P1]), self.state(server))

        outcome = self.attach(server, count=2)
        # The flavor's vGPU counts: one more is made, on the parent with
        # more vGPUs left.
        self.assertTrue(outcome.changed, outcome.message)
        second = self.mdev(server, P2)
        self.assertEqual((sorted([first, second]), sorted([first, second]),
                          2, [P1, P2]), self.state(server))

        # A hard reboot rebuilds the XML with both, makes none.
        server = self._reboot_server(server, hard=True)
        self.assertEqual(sorted([first, second]), sorted(
            guest_devices.mdev_uuids_in_config(self.last_config(server))))
        self.assertEqual((sorted([first, second]), sorted([first, second]),
                          2, [P1, P2]), self.state(server))

        # Two vGPUs on two parents: which one goes must be named.
        error = self.assertRaises(errors.InvalidRequest, self.detach, server)
        self.assertIn('name the one to detach', str(error))
        outcome = self.detach(server, P2)
        self.assertTrue(outcome.changed, outcome.message)
        self.assertIn('mdev %s' % second, outcome.message)
        self.assertEqual(([first], [first], 1, [P1]), self.state(server))
        # The flavor's own vGPU stays.
        error = self.assertRaises(errors.InvalidRequest, self.detach,
                                  server, P1)
        self.assertIn('came with the flavor', str(error))

    def test_a_server_without_accelerators_gets_a_local_vgpu(self):
        server = self.server()
        self.assertIsNone(self.last_config(server).cpuset)
        outcome = self.attach(server)
        self.assertTrue(outcome.changed, outcome.message)
        mine = self.mdev(server, P1)
        self.assertEqual(([mine], [mine], 1, [P1]), self.state(server))
        # Its vCPUs and memory follow the vGPU to node 1 (at the next
        # rebuild of its XML: the fake libvirt cannot re-pin live).
        self.assertIn('vCPUs on node 1 (CPUs 4-7)', outcome.numa)
        server = self._reboot_server(server, hard=True)
        self.assertEqual({4, 5, 6, 7}, self.last_config(server).cpuset)
        self.assertEqual(([mine], [mine], 1, [P1]), self.state(server))
        outcome = self.detach(server)
        self.assertTrue(outcome.changed, outcome.message)
        self.assertEqual(([], [], 0, []), self.state(server))

    def test_a_refused_mdev_leaves_nothing_behind(self):
        server = self.server(**{'resources:VGPU': '1'})
        before = self.state(server)
        kernel = self.driver_of('host1').accelerators.driver_for(
            self.driver_of('host1').accelerators.by_address()[P1]).sysfs
        kernel.refuse = errno.EIO
        error = self.assertRaises(attach.AttachError, self.attach, server,
                                  count=2)
        self.assertIn('everything was rolled back', str(error))
        self.assertIn('could not create mdev', str(error))
        kernel.refuse = None
        self.assertEqual(before, self.state(server))

    def test_a_detach_killed_midway_is_finished_by_reconcile(self):
        server = self.server(**{'resources:VGPU': '1'})
        self.attach(server, count=2)
        first, second = self.mdev(server, P1), self.mdev(server, P2)

        # The process dies after the guest let the mdev go, before it was
        # removed: no rollback runs (as after a real kill).
        with fixtures.MockPatch(
                'cyborg_nova.drivers.mdev.MdevDriver.remove_mdev',
                side_effect=test_attach.ProcessKilled()):
            self.assertRaises(test_attach.ProcessKilled, self.detach, server,
                              P2)
        self.assertEqual(([first], sorted([first, second]), 2, [P1, P2]),
                         self.state(server))

        # The next command (or nova-compute's start) heals it: the orphan
        # mdev removed, the record and the allocation down to one.
        plan = attach.reconcile(self.driver_of('host1'), self.ctx,
                                self.instance(server))
        self.assertEqual(((P2,), (P2,)), (plan.forgotten, plan.reset))
        self.assertEqual(([first], [first], 1, [P1]), self.state(server))


class TestVGPUTypes(gpu_base.GPUTestBase):
    """Parents hosting different mdev types are providers of their own, so
    a flavor's ``trait:CUSTOM_MDEV_TYPE_*`` gets the type it names."""

    def setUp(self):
        super().setUp()
        self.useFixture(mdev_kernel.EmulatedMdevKernel())
        self.flags(enabled_drivers=['pci', 'mdev', 'numa_pinning'],
                   enabled_mdev_types=['nvidia-222', 'nvidia-223'],
                   group='accelerator')
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'sys')
        os.makedirs(root)
        hosts.gpu_host(root, [1, 1], product=hosts.T4,
                       kernel_driver='nvidia', mdev_types=MDEV_TYPES)
        # P2 already hosts an nvidia-223 mdev (of no server): it stays a
        # 223 parent; P1 takes the first enabled type, 222.
        self.kernel = mdev_kernel.EmulatedKernel(root)
        self.kernel.write(self.kernel.path(
            'bus', 'pci', 'devices', P2, 'mdev_supported_types',
            'nvidia-223', 'create'), '5e0b6f2e-0000-4000-8000-00000000aaaa')
        self.flags(sysfs_root=root, group='accelerator')
        self.start_compute('host1', host_info=fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=4, cpu_threads=1,
            kB_mem=16 * 1024 * 1024))
        self.root = root

    def test_a_trait_picks_the_mdev_type(self):
        rp_uuid = self.compute_rp_uuids['host1']
        names = sorted(rp['name'] for rp in self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
            if rp['uuid'] != rp_uuid)
        self.assertEqual(['host1_VGPU_10de_1eb8_nvidia-222_NUMA1',
                          'host1_VGPU_10de_1eb8_nvidia-223_NUMA1'], names)
        for trait, parent in (('CUSTOM_MDEV_TYPE_NVIDIA_223', P2),
                              ('CUSTOM_MDEV_TYPE_NVIDIA_222', P1)):
            flavor = self._create_flavor(vcpu=1, memory_mb=512, extra_spec={
                'resources:VGPU': '1', 'trait:%s' % trait: 'required'})
            server = self._create_server(flavor_id=flavor, networks='none')
            mine = mdev_driver.mdev_uuid(server['id'], parent, 0)
            self.assertIn(mine, mdev_kernel.EmulatedMdevKernel.mdevs(
                self.root), trait)
