"""Which devices of a locality group a guest gets:
``cyborg_nova.policy.device_pick``."""

import testscenarios
import testtools

from cyborg_nova import device
from cyborg_nova import errors
from cyborg_nova.policy import device_pick
from cyborg_nova.tests.unit import test_topology as machines

A1, A2, C1, C2 = (machines.A1, machines.A2, machines.C1, machines.C2)


def node0_of(machine):
    return [d for d in machine() if d.numa_node == 0]


def unhealthy(dev):
    dev.health = device.Health.bad('XID 79: fallen off the bus')
    return dev


def not_assignable(dev):
    dev.reasons = ('shares IOMMU group 7 with 0000:00:1f.0',)
    return dev


class PickTest(testscenarios.WithScenarios, testtools.TestCase):
    """The compute driver's call: ``pick(devices, count, in_use,
    group_name)`` on the devices of one group."""

    scenarios = [
        ('one GPU of a PCIe server -> the lowest address',
         dict(devices=machines.pcie_server, count=1, expect=[A1])),
        ('two GPUs -> a PCIe switch pair, not one per socket',
         dict(devices=machines.pcie_server, count=2, expect=[A1, A2])),
        ('in use -> skipped, and the broken switch is used up first',
         dict(devices=machines.pcie_server, in_use={A1}, count=1,
              expect=[A2])),
        ('unhealthy -> skipped',
         dict(devices=lambda: [unhealthy(d) if d.address == A1 else d
                               for d in machines.pcie_server()],
              count=1, expect=[A2])),
        ('not assignable -> skipped',
         dict(devices=lambda: [not_assignable(d) if d.address == C1 else d
                               for d in machines.pcie_server()],
              in_use={A1}, count=2, expect=[A2, C2])),
        ('mixed host, one GPU -> a lone GPU, the NVLink pairs kept whole',
         dict(devices=machines.mixed, count=1, expect=[C1])),
        ('DGX node 0, two GPUs with one used -> the other PCIe switch pair',
         dict(devices=lambda: node0_of(machines.dgx), in_use={A1}, count=2,
              expect=[machines.B1, machines.B2])),
        ('zero -> nothing',
         dict(devices=machines.pcie_server, count=0, expect=[])),
    ]

    in_use = frozenset()

    def test_pick(self):
        chosen = device_pick.pick(self.devices(), self.count, self.in_use,
                                  group_name='PGPU_10de_2330_NUMA0')
        self.assertEqual(sorted(self.expect),
                         sorted(d.address for d in chosen))


class OrderTest(testtools.TestCase):

    def test_least_loaded_first_then_by_address(self):
        devices = machines.pcie_server(
            loads={A1: 70.0, A2: 10.0, C1: 10.0, C2: 0.0})
        chosen = device_pick.pick(devices, 4, set())
        self.assertEqual([C2, A2, C1, A1], [d.address for d in chosen])

    def test_positional_call_of_the_compute_driver(self):
        chosen = device_pick.pick(machines.pcie_server(), 2, set(), 'g')
        self.assertEqual([A1, A2], [d.address for d in chosen])


class ErrorTest(testtools.TestCase):

    def test_too_few_free_names_the_group_and_counts(self):
        error = self.assertRaises(
            errors.NoFreeDevice, device_pick.pick, machines.pcie_server(),
            2, {A1, A2, C1}, group_name='PGPU_10de_2330_NUMA0')
        self.assertIn('locality group PGPU_10de_2330_NUMA0 has 1 free '
                      'healthy device(s) but Placement allocated 2',
                      str(error))

    def test_strict_without_an_island_says_what_to_do(self):
        error = self.assertRaises(
            errors.NoFreeDevice, device_pick.pick, machines.pcie_server(),
            2, {A1, C1}, group_name='PGPU_10de_2330_NUMA0',
            link_policy='strict')
        self.assertIn('locality group PGPU_10de_2330_NUMA0 has 2 free '
                      'healthy device(s) but at most 1 in one link island',
                      str(error))
        self.assertIn('accelerator:link_policy=best_effort', str(error))

    def test_strict_with_an_island(self):
        chosen = device_pick.pick(machines.pcie_server(), 2, {A1},
                                  link_policy='strict')
        self.assertEqual([C1, C2], [d.address for d in chosen])

    def test_best_effort_without_an_island_takes_any(self):
        chosen = device_pick.pick(machines.pcie_server(), 2, {A1, C1})
        self.assertEqual([A2, C2], [d.address for d in chosen])


P1, P2, P3 = '0000:10:00.0', '0000:20:00.0', '0000:30:00.0'


def parent(address, load=None, capacity=8):
    """A vGPU parent: *capacity* vGPUs, its driver measured *load* %."""
    return device.Device(
        address=address, resource_class='VGPU',
        capabilities={'vgpu_capacity': capacity},
        utilization=(None if load is None
                     else device.Utilization(compute_percent=load)))


class PickVgpuParentsTest(testscenarios.WithScenarios, testtools.TestCase):
    """``pick_vgpu_parents(parents, count, free, own)``: which shared
    parents an instance's vGPUs of one group go to."""

    scenarios = [
        ('loads unknown -> the parent with most vGPUs left',
         dict(parents=[parent(P1), parent(P2)], free={P1: 3, P2: 5},
              count=1, expect=[P2])),
        ('the idle GPU wins over the one with more vGPUs left',
         dict(parents=[parent(P1, load=90.0), parent(P2, load=5.0)],
              free={P1: 7, P2: 2}, count=1, expect=[P2])),
        ('memory use counts as load too',
         dict(parents=[parent(P1, load=0.0),
                       device.Device(address=P2, resource_class='VGPU',
                                     capabilities={'vgpu_capacity': 8},
                                     utilization=device.Utilization(
                                         compute_percent=0.0,
                                         memory_percent=60.0))],
              free={P1: 1, P2: 8}, count=1, expect=[P1])),
        ('equal loads -> two vGPUs of one request spread over two GPUs',
         dict(parents=[parent(P1, 20.0), parent(P2, 20.0)],
              free={P1: 8, P2: 8}, count=2, expect=[P1, P2])),
        ('a much busier GPU is not used while the idle one has time slices',
         dict(parents=[parent(P1, 0.0, capacity=4), parent(P2, 80.0)],
              free={P1: 4, P2: 8}, count=3, expect=[P1, P1, P1])),
        ('time slices added by this pick count against a parent',
         dict(parents=[parent(P1, 0.0, capacity=2), parent(P2, 40.0)],
              free={P1: 2, P2: 8}, count=2, expect=[P1, P2])),
        ('a full parent is skipped however idle',
         dict(parents=[parent(P1, 0.0), parent(P2, 99.0)],
              free={P1: 0, P2: 1}, count=1, expect=[P2])),
        ('parents missing from free (unhealthy) are never picked',
         dict(parents=[parent(P1, 0.0), parent(P2, 50.0)],
              free={P2: 4}, count=2, expect=[P2, P2])),
        ('the parents an instance holds are kept, then the least loaded',
         dict(parents=[parent(P1, 90.0), parent(P2, 0.0), parent(P3, 0.0)],
              free={P1: 2, P2: 8, P3: 8}, own={P1: 1}, count=2,
              expect=[P1, P2])),
        ('a held parent with no room left is not kept',
         dict(parents=[parent(P1, 0.0), parent(P2, 10.0)],
              free={P1: 0, P2: 8}, own={P1: 1}, count=1, expect=[P2])),
        ('ties end by address',
         dict(parents=[parent(P2, 0.0), parent(P1, 0.0)],
              free={P1: 4, P2: 4}, count=1, expect=[P1])),
    ]

    own = None

    def test_pick(self):
        chosen = device_pick.pick_vgpu_parents(
            self.parents, self.count, dict(self.free), self.own,
            group_name='VGPU_10de_1eb8_nvidia-223_NUMA1')
        self.assertEqual(self.expect, [d.address for d in chosen])

    def test_free_is_not_changed(self):
        free = dict(self.free)
        device_pick.pick_vgpu_parents(self.parents, self.count, free,
                                      self.own)
        self.assertEqual(self.free, free)


class PickVgpuParentsErrorTest(testtools.TestCase):

    def test_too_few_vgpus_names_the_group_and_counts(self):
        error = self.assertRaises(
            errors.NoFreeDevice, device_pick.pick_vgpu_parents,
            [parent(P1), parent(P2)], 4, {P1: 1, P2: 2},
            group_name='VGPU_10de_1eb8_nvidia-223_NUMA1')
        self.assertIn('locality group VGPU_10de_1eb8_nvidia-223_NUMA1 has '
                      '3 free vGPU(s) but Placement allocated 4', str(error))
