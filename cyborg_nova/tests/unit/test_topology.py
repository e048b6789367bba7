"""Topology-aware choice of devices: ``cyborg_nova.policy.topology``.

Machines are plain :class:`~cyborg_nova.device.Device` objects laid out as
the drivers report them (``pcie_path`` root complex first, NVLink in
``capabilities``):

* DGX: 8 GPUs all linked through NVSwitches (one NVLink island), 2 sockets,
  2 PCIe switches of 2 GPUs per socket (the PCIe layout of the synthetic
  sysfs host ``pcie_8gpu_2socket``);
* PCIe server: 4 GPUs, 2 behind one PCIe switch on each socket;
* mixed host: 2 NVLink-bridged pairs, each behind its own PCIe switch, on
  socket 0; 2 lone GPUs on their own root ports on socket 1;
* quad + pair: an NVLink quad and an NVLink pair, each GPU on its own root
  port of one root complex.

The last tests derive the devices from the synthetic sysfs tree and the
fake NVML through the real drivers, and check what the scheduler is told.
"""

import dataclasses
import json
import math
import time

import fixtures
import testscenarios
import testtools

from cyborg_nova import device
from cyborg_nova.drivers import nvidia
from cyborg_nova.policy import device_pick
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import topology as topo
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.unit import test_nvidia


def gpu(address, node, path, peers=(), island=None, load=None):
    caps = {}
    if island is not None:
        caps = {'nvlink_peers': sorted(peers), 'nvlink_island': island}
    return device.Device(
        address=address, vendor_id='10de', product_id='2330',
        class_id='030200', numa_node=node, pcie_path=tuple(path),
        resource_class='PGPU', capabilities=caps,
        utilization=(None if load is None
                     else device.Utilization(compute_percent=load)))


#: GPU address -> (NUMA node, pcie_path) of pcie_8gpu_2socket.
SWITCHED = {
    '0000:03:00.0': (0, ('pci0000:00', '0000:00:01.0', '0000:01:00.0',
                         '0000:02:00.0')),
    '0000:04:00.0': (0, ('pci0000:00', '0000:00:01.0', '0000:01:00.0',
                         '0000:02:01.0')),
    '0000:07:00.0': (0, ('pci0000:00', '0000:00:02.0', '0000:05:00.0',
                         '0000:06:00.0')),
    '0000:08:00.0': (0, ('pci0000:00', '0000:00:02.0', '0000:05:00.0',
                         '0000:06:01.0')),
    '0000:83:00.0': (1, ('pci0000:80', '0000:80:01.0', '0000:81:00.0',
                         '0000:82:00.0')),
    '0000:84:00.0': (1, ('pci0000:80', '0000:80:01.0', '0000:81:00.0',
                         '0000:82:01.0')),
    '0000:87:00.0': (1, ('pci0000:80', '0000:80:02.0', '0000:85:00.0',
                         '0000:86:00.0')),
    '0000:88:00.0': (1, ('pci0000:80', '0000:80:02.0', '0000:85:00.0',
                         '0000:86:01.0')),
}
A1, A2, B1, B2 = '0000:03:00.0', '0000:04:00.0', '0000:07:00.0', \
    '0000:08:00.0'
C1, C2, D1, D2 = '0000:83:00.0', '0000:84:00.0', '0000:87:00.0', \
    '0000:88:00.0'
ALL8 = [A1, A2, B1, B2, C1, C2, D1, D2]


def dgx(loads=None):
    loads = loads or {}
    return [gpu(a, node, path, peers=set(ALL8) - {a}, island=A1,
                load=loads.get(a))
            for a, (node, path) in sorted(SWITCHED.items())]


def pcie_server(loads=None):
    loads = loads or {}
    return [gpu(a, *SWITCHED[a], load=loads.get(a))
            for a in (A1, A2, C1, C2)]


def mixed():
    pairs = [gpu(a, *SWITCHED[a], peers={p}, island=min(a, p))
             for a, p in ((A1, A2), (A2, A1), (B1, B2), (B2, B1))]
    lone = [gpu(C1, 1, ('pci0000:80', '0000:80:01.0')),
            gpu(D1, 1, ('pci0000:80', '0000:80:02.0'))]
    return pairs + lone


QUAD = ['0000:%02x:00.0' % b for b in (0x10, 0x20, 0x30, 0x40)]
PAIR = ['0000:%02x:00.0' % b for b in (0x50, 0x60)]


def quad_and_pair():
    devices = []
    for index, members in enumerate((QUAD, PAIR)):
        for a in members:
            port = '0000:00:%02x.0' % int(a[5:7], 16)
            devices.append(gpu(a, 0, ('pci0000:00', port),
                               peers=set(members) - {a}, island=members[0]))
    return devices


def by_address(devices):
    return {d.address: d for d in devices}


class ChooseTest(testscenarios.WithScenarios, testtools.TestCase):
    """Which k free devices a request gets."""

    scenarios = [
        ('DGX, 8 GPUs -> all',
         dict(machine=dgx, count=8, expect=ALL8)),
        ('DGX, 2 GPUs -> two NVLink peers behind one PCIe switch',
         dict(machine=dgx, count=2, expect=[A1, A2])),
        ('DGX, 4 GPUs -> the four of one socket',
         dict(machine=dgx, count=4, expect=[A1, A2, B1, B2])),
        ('DGX, 1 GPU after one is used -> its PCIe switch partner',
         dict(machine=dgx, used=[A1], count=1, expect=[A2])),
        ('DGX, 4 GPUs, socket 0 half used -> socket 1 whole',
         dict(machine=dgx, used=[A1, A2], count=4,
              expect=[C1, C2, D1, D2])),
        ('DGX, 2 GPUs, one PCIe switch left whole -> that switch (NVLink '
         'all round, PCIe locality decides)',
         dict(machine=dgx, used=[A1, B1, C1], count=2, expect=[D1, D2])),
        ('DGX, 4 of 8 free across sockets and switches, 2 GPUs -> two on '
         'one socket',
         dict(machine=dgx, used=[A1, B1, C1, D1], count=2,
              expect=[A2, B2])),
        ('DGX, 4 of 8 free across sockets and switches, 4 GPUs, strict -> '
         'the four free (one NVLink island)',
         dict(machine=dgx, used=[A1, B1, C1, D1], count=4, policy='strict',
              expect=[A2, B2, C2, D2])),
        ('PCIe server, 2 GPUs -> both behind one switch',
         dict(machine=pcie_server, count=2, expect=[A1, A2])),
        ('PCIe server, 1 GPU after one is used -> its switch partner, the '
         'other switch stays whole',
         dict(machine=pcie_server, used=[A1], count=1, expect=[A2])),
        ('PCIe server, 2 GPUs, one switch broken -> the whole switch',
         dict(machine=pcie_server, used=[A1], count=2, expect=[C1, C2])),
        ('PCIe server, 2 GPUs, one free per switch -> one of each',
         dict(machine=pcie_server, used=[A1, C1], count=2,
              expect=[A2, C2])),
        ('PCIe server, 2 GPUs, one free per switch, strict -> none',
         dict(machine=pcie_server, used=[A1, C1], count=2, policy='strict',
              expect=None)),
        ('PCIe server, 1 GPU, equal choices -> the least loaded',
         dict(machine=lambda: pcie_server({A1: 90.0, A2: 10.0, C1: 50.0,
                                           C2: 40.0}),
              count=1, expect=[A2])),
        ('PCIe server, 5 GPUs -> none (too few)',
         dict(machine=pcie_server, count=5, expect=None)),
        ('mixed host, 1 GPU -> a lone GPU, pairs kept whole',
         dict(machine=mixed, count=1, expect=[C1])),
        ('mixed host, 2 GPUs -> an NVLink pair, not the two lone GPUs',
         dict(machine=mixed, count=2, expect=[A1, A2])),
        ('mixed host, 2 GPUs, one pair broken -> the other pair',
         dict(machine=mixed, used=[A1], count=2, expect=[B1, B2])),
        ('mixed host, 1 GPU, lone GPUs taken -> the rest of a broken pair',
         dict(machine=mixed, used=[C1, D1, B1], count=1, expect=[B2])),
        ('mixed host, 2 GPUs, both pairs broken, strict -> none',
         dict(machine=mixed, used=[A1, B1], count=2, policy='strict',
              expect=None)),
        ('mixed host, 2 GPUs, both pairs broken, best effort -> two on one '
         'root complex',
         dict(machine=mixed, used=[A1, B1], count=2, expect=[A2, B2])),
        ('quad + pair, 2 GPUs -> the pair, the quad kept whole',
         dict(machine=quad_and_pair, count=2, expect=PAIR)),
        ('quad + pair, 1 GPU -> from the pair',
         dict(machine=quad_and_pair, count=1, expect=PAIR[:1])),
        ('quad + pair, 4 GPUs -> the quad',
         dict(machine=quad_and_pair, count=4, expect=QUAD)),
        ('quad + pair, 3 GPUs, strict -> three of the quad',
         dict(machine=quad_and_pair, count=3, policy='strict',
              expect=QUAD[:3])),
    ]

    used = ()
    policy = topo.BEST_EFFORT

    def test_choose(self):
        free = [d for d in self.machine() if d.address not in self.used]
        chosen = topo.choose(free, self.count, link_policy=self.policy)
        if self.expect is None:
            self.assertIsNone(chosen)
        else:
            self.assertIsNotNone(chosen)
            self.assertEqual(sorted(self.expect),
                             sorted(d.address for d in chosen))


class LinkLevelTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('NVLink peers through NVSwitches, across sockets -> NVLink',
         dict(machine=dgx, a=A1, b=D2, level=topo.NVLINK)),
        ('NVLink bridge pair -> NVLink',
         dict(machine=mixed, a=B1, b=B2, level=topo.NVLINK)),
        ('behind one PCIe switch -> PCIe switch',
         dict(machine=pcie_server, a=A1, b=A2, level=topo.PCIE_SWITCH)),
        ('two switches of one root complex -> root complex',
         dict(machine=mixed, a=A1, b=B1, level=topo.HOST_BRIDGE)),
        ('two root ports of one root complex -> root complex',
         dict(machine=mixed, a=C1, b=D1, level=topo.HOST_BRIDGE)),
        ('two sockets -> cross-socket',
         dict(machine=pcie_server, a=A2, b=C1, level=topo.CROSS_SOCKET)),
    ]

    def test_level(self):
        devs = by_address(self.machine())
        self.assertEqual(self.level,
                         topo.link_level(devs[self.a], devs[self.b]))
        self.assertEqual(self.level,
                         topo.link_level(devs[self.b], devs[self.a]))


class PcieLevelTest(testtools.TestCase):

    def test_two_functions_on_one_root_port_share_the_root_complex(self):
        a = gpu('0000:01:00.0', 0, ('pci0000:00', '0000:00:01.0'))
        b = gpu('0000:01:00.1', 0, ('pci0000:00', '0000:00:01.0'))
        self.assertEqual(topo.HOST_BRIDGE, topo.link_level(a, b))

    def test_two_root_complexes_of_one_node_are_numa_local(self):
        a = gpu('0000:18:00.0', 0, ('pci0000:17', '0000:17:01.0'))
        b = gpu('0000:3b:00.0', 0, ('pci0000:3a', '0000:3a:01.0'))
        self.assertEqual(topo.NUMA_NODE, topo.link_level(a, b))

    def test_unknown_node_and_path_is_cross_socket(self):
        a = gpu('0000:18:00.0', None, ())
        b = gpu('0000:3b:00.0', None, ())
        self.assertEqual(topo.CROSS_SOCKET, topo.link_level(a, b))

    def test_a_vm_root_bus_is_one_root_complex(self):
        a = gpu('0000:00:06.0', 0, ('pci0000:00',))
        b = gpu('0000:00:07.0', 0, ('pci0000:00',))
        self.assertEqual(topo.HOST_BRIDGE, topo.link_level(a, b))
        self.assertIsNone(topo.switch_of(a))

    def test_nvlink_without_pcie_path_is_still_nvlink(self):
        a = gpu('0000:18:00.0', None, (), peers={'0000:3b:00.0'},
                island='0000:18:00.0')
        b = gpu('0000:3b:00.0', None, ())
        self.assertEqual(topo.NVLINK, topo.link_level(a, b))


class IslandTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('DGX, all free -> 8 (one NVSwitch island)',
         dict(machine=dgx, used=(), largest=8)),
        ('DGX, one used -> 7',
         dict(machine=dgx, used=(A1,), largest=7)),
        ('PCIe server -> 2 (one switch)',
         dict(machine=pcie_server, used=(), largest=2)),
        ('mixed host, both pairs broken -> 1',
         dict(machine=mixed, used=(A1, B1), largest=1)),
        ('quad + pair -> 4',
         dict(machine=quad_and_pair, used=(), largest=4)),
        ('nothing free -> 0',
         dict(machine=pcie_server, used=(A1, A2, C1, C2), largest=0)),
    ]

    def test_largest_free_island(self):
        free = [d for d in self.machine() if d.address not in self.used]
        self.assertEqual(self.largest, topo.largest_free_island(free))


class InOneIslandTest(testtools.TestCase):

    def test_one_device_is_an_island(self):
        self.assertTrue(topo.in_one_island(pcie_server()[:1]))

    def test_nvlink_island_or_pcie_switch(self):
        devs = by_address(mixed())
        self.assertTrue(topo.in_one_island([devs[A1], devs[A2]]))
        self.assertFalse(topo.in_one_island([devs[A1], devs[B1]]))
        self.assertFalse(topo.in_one_island([devs[C1], devs[D1]]))
        server = by_address(pcie_server())
        self.assertTrue(topo.in_one_island([server[C1], server[C2]]))

    def test_describe(self):
        devs = by_address(pcie_server())
        self.assertEqual('one PCIe switch, one link island',
                         topo.describe([devs[A1], devs[A2]]))
        self.assertEqual('across NUMA nodes, not one link island',
                         topo.describe([devs[A1], devs[C1]]))


class LargeHostTest(testtools.TestCase):
    """16 GPUs in two NVSwitch islands of 8 (one per socket): C(16, 8) sets
    is past the exhaustive limit, so sets are grown greedily."""

    def machine(self):
        devices = []
        for node in (0, 1):
            members = ['0000:%02x:00.0' % (0x10 * node + 0x80 * node + i + 1)
                       for i in range(8)]
            for i, a in enumerate(members):
                path = ('pci0000:%02x' % (0x80 * node),
                        '0000:%02x:%02x.0' % (0x80 * node, 1 + i // 2),
                        'sw%d-%d' % (node, i // 2))
                devices.append(gpu(a, node, path,
                                   peers=set(members) - {a},
                                   island=members[0]))
        return devices

    def test_eight_of_sixteen_is_one_island(self):
        devices = self.machine()
        self.assertGreater(math.comb(16, 8),
                           topo.MAX_EXHAUSTIVE_SETS)
        start = time.monotonic()
        chosen = topo.choose(devices, 8, link_policy=topo.STRICT)
        elapsed = time.monotonic() - start
        self.assertEqual([d.address for d in devices[:8]],
                         sorted(d.address for d in chosen))
        self.assertLess(elapsed, 2.0)

    def test_four_of_sixteen_without_nvlink_is_two_switch_pairs(self):
        devices = [dataclasses.replace(d, capabilities={})
                   for d in self.machine()]
        self.assertGreater(math.comb(16, 4), topo.MAX_EXHAUSTIVE_SETS)
        chosen = topo.choose(devices, 4)
        self.assertEqual([d.address for d in devices[:4]],
                         sorted(d.address for d in chosen))

    def test_eight_of_sixteen_best_effort_with_island_broken(self):
        devices = self.machine()
        free = devices[1:]      # island 0 has 7 free, island 1 has 8
        chosen = topo.choose(free, 8)
        self.assertEqual([d.address for d in devices[8:]],
                         sorted(d.address for d in chosen))


class FromDriversTest(test_nvidia.DriverTestBase):
    """Devices discovered by the real NVIDIA driver on the synthetic
    ``pcie_8gpu_2socket`` tree, with NVLink from the fake NVML."""

    def discover(self, nvml, bound):
        """The devices, NVLink read by NVML on the GPUs bound to
        ``nvidia``.  Those are not assignable (a host driver holds them);
        here they are taken as rebound to vfio-pci with the NVLink topology
        read before (NVML cannot see a GPU bound to vfio-pci)."""
        root = self.synthetic(hosts.pcie_8gpu_2socket, nvidia_bound=bound)
        devices = self.driver(root, nvml).discover()
        for dev in devices:
            if dev.address in bound:
                self.assertIn("bound to kernel driver 'nvidia'",
                              ' '.join(dev.reasons))
        return [dataclasses.replace(d, reasons=()) for d in devices]

    def test_dgx_nvswitch_host(self):
        devices = self.discover(fake_nvml.dgx_h100(), fake_nvml.DGX_BUS_IDS)
        devs = by_address(devices)
        self.assertEqual(topo.NVLINK, topo.link_level(devs[A1], devs[D2]))
        self.assertEqual(topo.PCIE_SWITCH, topo.pcie_level(devs[A1],
                                                           devs[A2]))
        groups = inventory.locality_groups(devices)
        self.assertEqual([4, 4], [g.largest_free_island for g in groups])
        node0 = [d for d in devices if d.numa_node == 0]
        # The compute driver's pick, within NUMA node 0's group.
        self.assertEqual([A1, A2], [d.address for d in device_pick.pick(
            node0, 2, set(), group_name='NUMA0')])
        self.assertEqual([A2], [d.address for d in device_pick.pick(
            node0, 1, {A1})])
        # What the scheduler reads back from the host's stats.
        summary = host_stats.decode(host_stats.encode(
            inventory.locality_groups(devices, in_use={A1, C1, C2})))
        self.assertEqual([3, 2], [g.largest_free_island
                                  for g in summary.groups])

    def test_nvlink_pairs_on_socket_0_pcie_switches_on_socket_1(self):
        devices = self.discover(fake_nvml.pcie_nvlink_pairs(),
                                fake_nvml.PAIR_BUS_IDS)
        devs = by_address(devices)
        self.assertEqual(
            [topo.NVLINK, topo.HOST_BRIDGE, topo.PCIE_SWITCH,
             topo.CROSS_SOCKET],
            [topo.link_level(devs[A1], devs[A2]),
             topo.link_level(devs[A1], devs[B1]),
             topo.link_level(devs[C1], devs[C2]),
             topo.link_level(devs[A1], devs[C1])])
        self.assertIn(nvidia.NVLINK_TRAIT, devs[A1].traits)
        node0 = [d for d in devices if d.numa_node == 0]
        self.assertEqual([B1, B2], sorted(d.address for d in
                                          device_pick.pick(node0, 2, {A1})))
        groups = inventory.locality_groups(devices, in_use={A1, B1})
        self.assertEqual([1, 2], [g.largest_free_island for g in groups])


class StatsCompatibilityTest(testtools.TestCase):
    """Islands travel in a key of their own: older rows still decode, and
    the rows an older scheduler reads are unchanged."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.policy.host_stats._cache', {}))

    def test_rows_keep_seven_fields(self):
        stats = host_stats.encode(inventory.locality_groups(pcie_server()))
        data = json.loads(stats[host_stats.STATS_KEY])
        self.assertEqual({7}, {len(row) for row in data['groups']})
        self.assertEqual([2, 2], data['islands'])

    def test_old_stats_decode_as_unknown(self):
        old = {host_stats.STATS_KEY:
               '{"v":1,"groups":[["PGPU_10de_2330_NUMA0","PGPU",0,2,2,0,'
               'null]]}'}
        [group] = host_stats.decode(old).groups
        self.assertEqual(2, group.free)
        self.assertIsNone(group.largest_free_island)

    def test_mismatched_islands_are_ignored(self):
        text = ('{"v":1,"groups":[["PGPU_10de_2330_NUMA0","PGPU",0,2,2,0,'
                'null]],"islands":[2,2]}')
        [group] = host_stats.decode({host_stats.STATS_KEY: text}).groups
        self.assertIsNone(group.largest_free_island)
