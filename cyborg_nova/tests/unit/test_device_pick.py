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
