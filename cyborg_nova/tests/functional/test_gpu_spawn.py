"""A server asking for a GPU gets the GPU Placement allocated, NUMA-local,
through the real Nova API, conductor, scheduler, Placement and compute."""

from cyborg_nova.tests.functional import gpu_base


class TestGPUSpawn(gpu_base.GPUTestBase):

    def test_inventory_is_one_provider_per_numa_node(self):
        self.start_gpu_compute('host1', gpu_nodes=[0, 1, 1])
        rp_uuid = self.compute_rp_uuids['host1']
        tree = self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
        children = {rp['name']: rp for rp in tree if rp['uuid'] != rp_uuid}
        self.assertEqual(
            {'host1_PGPU_10de_2330_NUMA0', 'host1_PGPU_10de_2330_NUMA1'},
            set(children))
        inv = self.placement.get(
            '/resource_providers/%s/inventories' %
            children['host1_PGPU_10de_2330_NUMA1']['uuid']).body
        self.assertEqual(2, inv['inventories']['PGPU']['total'])
        self.assertEqual(0, inv['inventories']['PGPU']['reserved'])
        traits = self.placement.get(
            '/resource_providers/%s/traits' %
            children['host1_PGPU_10de_2330_NUMA1']['uuid'],
            version='1.6').body['traits']
        self.assertIn('CUSTOM_ACCEL_NUMA_NODE_1', traits)
        self.assertIn('CUSTOM_PCI_PRODUCT_10DE_2330', traits)

    def test_shared_cpu_server_gets_its_gpu_numa_local(self):
        # One GPU on NUMA node 1 of 2; node 1 holds CPUs 4-7.
        self.start_gpu_compute('host1', gpu_nodes=[1])
        flavor = self.gpu_flavor(gpus=1)
        server = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('ACTIVE', server['status'])
        cfg = self.last_config(server)
        self.assertEqual(['0000:10:00.0'], self.hostdev_addresses(cfg))
        self.assertEqual({4, 5, 6, 7}, cfg.cpuset)
        self.assertEqual('strict', cfg.numatune.memory.mode)
        self.assertEqual([1], cfg.numatune.memory.nodeset)
        self.assertEqual({'host1_PGPU_10de_2330_NUMA1': 1},
                         self.gpu_usage('host1'))

    def test_without_the_tuning_driver_the_guest_is_left_where_nova_puts_it(
            self):
        self.flags(enabled_drivers=['pci'], group='accelerator')
        self.start_gpu_compute('host1', gpu_nodes=[1])
        flavor = self.gpu_flavor(gpus=1)
        server = self._create_server(flavor_id=flavor, networks='none')
        cfg = self.last_config(server)
        self.assertEqual(['0000:10:00.0'], self.hostdev_addresses(cfg))
        self.assertIsNone(cfg.numatune)
        self.assertNotEqual({4, 5, 6, 7}, cfg.cpuset)

    def test_dedicated_cpu_server_is_pinned_on_its_gpu_node(self):
        self.flags(cpu_dedicated_set='0-7', cpu_shared_set=None,
                   group='compute')
        self.start_gpu_compute('host1', gpu_nodes=[1])
        flavor = self.gpu_flavor(gpus=1, **{'hw:cpu_policy': 'dedicated'})
        server = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('ACTIVE', server['status'])
        cfg = self.last_config(server)
        self.assertEqual(['0000:10:00.0'], self.hostdev_addresses(cfg))
        pinned = set()
        for pin in cfg.cputune.vcpupin:
            pinned |= pin.cpuset
        self.assertEqual(2, len(pinned))
        self.assertTrue(pinned <= {4, 5, 6, 7}, pinned)
        self.assertEqual([1], cfg.numatune.memory.nodeset)


class TestGPUScheduling(gpu_base.GPUTestBase):

    def _pinned(self, cfg):
        pinned = set()
        for pin in cfg.cputune.vcpupin:
            pinned |= pin.cpuset
        return pinned

    def test_required_policy_skips_host_whose_gpu_node_is_full(self):
        self.flags(cpu_dedicated_set='0-7', cpu_shared_set=None,
                   group='compute')
        self.start_gpu_compute('hostX', gpu_nodes=[1, 1])
        flavor = self.gpu_flavor(
            gpus=1, vcpus=4, **{'hw:cpu_policy': 'dedicated',
                                'accelerator:numa_policy': 'required'})
        first = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('hostX', first['OS-EXT-SRV-ATTR:host'])
        self.assertEqual({4, 5, 6, 7},
                         self._pinned(self.last_config(first)))
        # hostX still has a free GPU on node 1, but no free pCPU there.
        second = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ERROR')
        self.assertIn('No valid host', second['fault']['message'])
        self.start_gpu_compute('hostY', gpu_nodes=[0])
        third = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual('hostY', third['OS-EXT-SRV-ATTR:host'])
        self.assertEqual({0, 1, 2, 3},
                         self._pinned(self.last_config(third)))

    def test_ordinary_servers_fill_the_host_without_gpus_first(self):
        self.flags(cpu_allocation_ratio=1.0)
        self.flags(cores=-1, ram=-1, instances=-1, group='quota')
        self.start_gpu_compute('hostA', gpu_nodes=[0, 1])
        self.start_gpu_compute('hostB', gpu_nodes=[])
        # Nova's harness gives every host 16 online CPUs: 4 such servers
        # fill a host.
        plain = self._create_flavor(vcpu=4, memory_mb=1024)
        hosts = []
        for _ in range(5):
            server = self._create_server(flavor_id=plain, networks='none')
            hosts.append(server['OS-EXT-SRV-ATTR:host'])
        # hostB takes four, only then hostA.
        self.assertEqual(['hostB'] * 4 + ['hostA'], hosts)
        gpu = self.gpu_flavor(gpus=1, vcpus=2)
        for _ in range(2):
            server = self._create_server(flavor_id=gpu, networks='none')
            self.assertEqual('hostA', server['OS-EXT-SRV-ATTR:host'])

    def test_four_servers_get_four_distinct_local_gpus(self):
        self.start_gpu_compute('host1', gpu_nodes=[0, 0, 1, 1])
        flavor = self.gpu_flavor(gpus=1, vcpus=2)
        node_cpus = {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
        gpu_node = {'0000:10:00.0': 0, '0000:20:00.0': 0,
                    '0000:30:00.0': 1, '0000:40:00.0': 1}
        seen = []
        for _ in range(4):
            server = self._create_server(flavor_id=flavor, networks='none')
            cfg = self.last_config(server)
            [address] = self.hostdev_addresses(cfg)
            seen.append(address)
            self.assertEqual(node_cpus[gpu_node[address]], cfg.cpuset)
            self.assertEqual([gpu_node[address]],
                             cfg.numatune.memory.nodeset)
        self.assertEqual(sorted(gpu_node), sorted(seen))
        self.assertEqual({'host1_PGPU_10de_2330_NUMA0': 2,
                          'host1_PGPU_10de_2330_NUMA1': 2},
                         self.gpu_usage('host1'))

    def test_extra_server_fails_cleanly_and_a_freed_gpu_is_reused(self):
        self.start_gpu_compute('host1', gpu_nodes=[1])
        flavor = self.gpu_flavor(gpus=1)
        first = self._create_server(flavor_id=flavor, networks='none')
        extra = self._create_server(flavor_id=flavor, networks='none',
                                    expected_state='ERROR')
        self.assertIn('No valid host', extra['fault']['message'])
        self.assertEqual({'host1_PGPU_10de_2330_NUMA1': 1},
                         self.gpu_usage('host1'))
        self._delete_server(first)
        self.assertEqual({'host1_PGPU_10de_2330_NUMA1': 0},
                         self.gpu_usage('host1'))
        self.assertEqual({}, self.driver_of('host1')._guest_devices())
        again = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual(['0000:10:00.0'],
                         self.hostdev_addresses(self.last_config(again)))

    def test_policy_without_a_device_fails_the_boot_with_its_reason(self):
        self.start_gpu_compute('host1', gpu_nodes=[1])
        flavor = self._create_flavor(
            vcpu=2, memory_mb=1024,
            extra_spec={'accelerator:numa_policy': 'required'})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('accelerator:numa_policy is set but the flavor '
                      'requests no accelerator', self.stdlog.logger.output)
