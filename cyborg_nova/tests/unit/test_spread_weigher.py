"""Servers with accelerators spread by free, idle devices:
``cyborg_nova.weighers.spread``."""

import testscenarios

from nova import objects
from nova.scheduler import weights
from nova import test

from cyborg_nova.tests.unit import test_accelerator_filter as h
from cyborg_nova.weighers import spread


def gpus(count, node=0, load=None, start=0, **kw):
    return [h.gpu('0000:%02x:00.0' % (3 + start + i), node, load=load, **kw)
            for i in range(count)]


class SpreadWeightTest(testscenarios.WithScenarios, test.NoDBTestCase):
    """The raw weight of one host (before Nova normalises)."""

    scenarios = [
        ('free devices of the requested class count one each',
         dict(devices=gpus(3), weight=3.0)),
        ('devices in use do not count',
         dict(devices=gpus(3), in_use=['0000:03:00.0'], weight=2.0)),
        ('unhealthy devices do not count',
         dict(devices=gpus(2) + gpus(1, start=5, healthy=False),
              weight=2.0)),
        ('a free device of a fully loaded group counts half by default',
         dict(devices=gpus(2, load=100.0), weight=1.0)),
        ('load weight 0 ignores load',
         dict(devices=gpus(2, load=100.0), load_weight=0.0, weight=2.0)),
        ('load weight 1 makes a fully loaded group count nothing',
         dict(devices=gpus(2, load=100.0) + gpus(1, node=1, start=8),
              load_weight=1.0, weight=1.0)),
        ('unknown load counts as idle',
         dict(devices=gpus(2), load_weight=1.0, weight=2.0)),
        ('only the requested classes count',
         dict(devices=gpus(2) + gpus(4, start=8, resource_class='VGPU',
                                     product='1eb8'),
              weight=2.0)),
        ('groups of every node count',
         dict(devices=gpus(2) + gpus(2, node=1, start=8, load=50.0),
              weight=2.0 + 2 * 0.75)),
        ('ordinary server -> spread weigher is neutral',
         dict(devices=gpus(4), specs={}, weight=0.0)),
        ('host without accelerators weighs nothing',
         dict(devices=[], weight=0.0)),
    ]

    in_use = ()
    load_weight = None
    specs = h.ONE_GPU

    def test_weight(self):
        if self.load_weight is not None:
            self.flags(load_weight=self.load_weight, group='accelerator')
        host = h.make_host(devices=self.devices, in_use=self.in_use)
        weigher = spread.AcceleratorSpreadWeigher()
        self.assertAlmostEqual(
            self.weight,
            weigher._weigh_object(host, h.make_spec(self.specs)))


class SpreadRankingTest(test.NoDBTestCase):

    def ranked(self, hosts, extra_specs=h.ONE_GPU):
        handler = weights.HostWeightHandler()
        weighed = handler.get_weighed_objects(
            [spread.AcceleratorSpreadWeigher()], hosts,
            h.make_spec(extra_specs))
        return [(w.obj.host, w.weight) for w in weighed]

    def hosts(self, aggregates=()):
        return [h.make_host('one', devices=gpus(1), aggregates=aggregates),
                h.make_host('four', devices=gpus(4), aggregates=aggregates),
                h.make_host('four-busy', devices=gpus(4, load=80.0),
                            aggregates=aggregates)]

    def test_more_free_idle_devices_weigh_more(self):
        self.assertEqual(['four', 'four-busy', 'one'],
                         [name for name, _ in self.ranked(self.hosts())])

    def test_a_list_weighs_as_each_host_alone(self):
        # weigh_objects reads the request once; the weights are those of
        # each host weighed alone, in the list's order.
        hosts = self.hosts() + [h.make_host('none', devices=[])]
        weigher = spread.AcceleratorSpreadWeigher()
        spec = h.make_spec(h.ONE_GPU)
        self.assertEqual(
            [weigher._weigh_object(host, spec) for host in hosts],
            weigher.weigh_objects([weights.WeighedHost(host, 0.0)
                                   for host in hosts], spec))
        self.assertEqual([1.0, 4.0, 4 * 0.6, 0.0], weigher.weigh_objects(
            [weights.WeighedHost(host, 0.0) for host in hosts], spec))

    def test_negative_multiplier_packs(self):
        self.flags(spread_weight_multiplier=-1.0, group='accelerator')
        self.assertEqual(['one', 'four-busy', 'four'],
                         [name for name, _ in self.ranked(self.hosts())])

    def test_aggregate_overrides_multiplier(self):
        agg = objects.Aggregate(id=1, name='pack', hosts=[],
                                metadata={'spread_weight_multiplier': '-2'})
        ranked = self.ranked(self.hosts(aggregates=[agg]))
        self.assertEqual(['one', 'four-busy', 'four'],
                         [name for name, _ in ranked])
        self.assertEqual(-2.0, ranked[-1][1])


class LinkIslandWeightTest(test.NoDBTestCase):
    """A multi-device request weighs a host by how much of it one free link
    island can hold."""

    def setUp(self):
        super().setUp()
        from cyborg_nova.tests.unit import test_topology as machines
        self.machines = machines

    def weight(self, devices, specs, in_use=()):
        host = h.make_host(devices=devices, in_use=in_use)
        return spread.AcceleratorSpreadWeigher()._weigh_object(
            host, h.make_spec(specs))

    def test_two_gpus_on_a_host_with_a_free_switch_pair_count_fully(self):
        self.assertAlmostEqual(4.0, self.weight(
            self.machines.pcie_server(), {'resources:PGPU': '2'}))

    def test_two_gpus_without_a_free_island_count_half(self):
        # One GPU free behind each switch: 2 free, islands of 1.
        self.assertAlmostEqual(1.0, self.weight(
            self.machines.pcie_server(), {'resources:PGPU': '2'},
            in_use=[self.machines.A1, self.machines.C1]))

    def test_one_gpu_is_not_discounted(self):
        self.assertAlmostEqual(2.0, self.weight(
            self.machines.pcie_server(), {'resources:PGPU': '1'},
            in_use=[self.machines.A1, self.machines.C1]))

    def test_ranking_island_host_first(self):
        island = h.make_host('island', devices=self.machines.pcie_server(),
                             in_use=[self.machines.C1, self.machines.C2])
        scattered = h.make_host(
            'scattered', devices=self.machines.pcie_server(),
            in_use=[self.machines.A1, self.machines.C1])
        handler = weights.HostWeightHandler()
        # Spreading or packing, two equally free hosts: the island first.
        for multiplier in (1.0, -1.0):
            self.flags(spread_weight_multiplier=multiplier,
                       group='accelerator')
            weighed = handler.get_weighed_objects(
                [spread.AcceleratorSpreadWeigher()], [scattered, island],
                h.make_spec({'resources:PGPU': '2'}))
            self.assertEqual('island', weighed[0].obj.host, multiplier)
