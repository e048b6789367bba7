"""Servers with several GPUs: the GPUs come from one NUMA node (one
provider), and ``accelerator:link_policy=strict`` takes them from one link
island or not at all.  Real Nova API, scheduler, Placement and compute."""

import os

import fixtures
from nova import context as nova_context
from nova.tests.fixtures import libvirt as fakelibvirt

from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import sysfs_builder
from cyborg_nova.tests.functional import gpu_base

NODE_CPUS = {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
#: switch_host(): two lone GPUs on node 1, each on its own root port, and
#: a pair behind one PCIe switch on node 0.
LONE = ['0000:10:00.0', '0000:20:00.0']
PAIR = ['0000:32:00.0', '0000:33:00.0']


def switch_host(root):
    b = sysfs_builder.SysfsBuilder(root)
    cpus = {0: '0-3', 1: '4-7'}
    for node, cpulist in cpus.items():
        b.numa_node(node, cpulist)
    b.enable_iommu()
    for index, address in enumerate(LONE):
        port = '0000:00:%02x.0' % (index + 1)
        b.bridge(port, numa_node=1, local_cpulist=cpus[1],
                 iommu_group=100 + index)
        b.device(address, vendor=hosts.NVIDIA, product=hosts.H100,
                 class_id=hosts.GPU_3D, numa_node=1, local_cpulist=cpus[1],
                 parent=port, kernel_driver='vfio-pci',
                 iommu_group=110 + index)
    b.bridge('0000:00:03.0', numa_node=0, local_cpulist=cpus[0],
             iommu_group=120)
    b.bridge('0000:30:00.0', parent='0000:00:03.0', numa_node=0,
             local_cpulist=cpus[0], iommu_group=121)
    for index, address in enumerate(PAIR):
        down = '0000:31:%02x.0' % index
        b.bridge(down, parent='0000:30:00.0', numa_node=0,
                 local_cpulist=cpus[0], iommu_group=122 + index)
        b.device(address, vendor=hosts.NVIDIA, product=hosts.H100,
                 class_id=hosts.GPU_3D, numa_node=0, local_cpulist=cpus[0],
                 parent=down, kernel_driver='vfio-pci',
                 iommu_group=130 + index)
    return b


class TestMultiGPU(gpu_base.GPUTestBase):

    def start_switch_compute(self, hostname):
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'sys')
        os.makedirs(root)
        switch_host(root)
        self.flags(sysfs_root=root, group='accelerator')
        return self.start_compute(hostname, host_info=fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=4, cpu_threads=1,
            kB_mem=16 * 1024 * 1024))

    def run_periodics(self):
        ctx = nova_context.get_admin_context()
        for compute in self.computes.values():
            compute.manager.update_available_resource(ctx)

    def gpus_and_node(self, server):
        cfg = self.last_config(server)
        addresses = sorted(self.hostdev_addresses(cfg))
        nodes = [n for n, cpus in NODE_CPUS.items() if cfg.cpuset == cpus]
        self.assertEqual(1, len(nodes), cfg.cpuset)
        self.assertEqual(nodes, cfg.numatune.memory.nodeset)
        return addresses, nodes[0]

    def test_two_gpus_come_from_one_numa_node(self):
        # GPUs alternate between the nodes: 10 and 30 on node 0, 20 and 40
        # on node 1; two by address would span both.
        self.start_gpu_compute('host1', gpu_nodes=[0, 1, 0, 1])
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=2),
                                     networks='none')
        addresses, node = self.gpus_and_node(server)
        by_node = {0: ['0000:10:00.0', '0000:30:00.0'],
                   1: ['0000:20:00.0', '0000:40:00.0']}
        self.assertEqual(by_node[node], addresses)
        self.assertEqual({'host1_PGPU_10de_2330_NUMA%d' % node: 2,
                          'host1_PGPU_10de_2330_NUMA%d' % (1 - node): 0},
                         self.gpu_usage('host1'))

    def test_strict_link_policy_takes_one_island_or_nothing(self):
        self.start_switch_compute('host1')
        strict = self.gpu_flavor(gpus=2,
                                 **{'accelerator:link_policy': 'strict'})
        first = self._create_server(flavor_id=strict, networks='none')
        self.assertEqual((PAIR, 0), self.gpus_and_node(first))
        self.run_periodics()

        # Node 1 has two free GPUs, but not behind one switch.
        second = self._create_server(flavor_id=strict, networks='none',
                                     expected_state='ERROR')
        self.assertIn('No valid host', second['fault']['message'])
        self.assertEqual({'host1_PGPU_10de_2330_NUMA0': 2,
                          'host1_PGPU_10de_2330_NUMA1': 0},
                         self.gpu_usage('host1'))

        # Best effort (the default) takes them.
        third = self._create_server(flavor_id=self.gpu_flavor(gpus=2),
                                    networks='none')
        self.assertEqual((LONE, 1), self.gpus_and_node(third))
