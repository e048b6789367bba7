"""Ordinary servers keep off accelerator hosts:
``cyborg_nova.weighers.stranding``.

Weights go through Nova's own ``HostWeightHandler``, so normalisation and
multipliers apply as in the scheduler.
"""

from nova import objects
from nova.scheduler import weights
from nova import test

from cyborg_nova.tests.unit import test_accelerator_filter as h
from cyborg_nova import weighers
from cyborg_nova.weighers import spread
from cyborg_nova.weighers import stranding

GPUS = [h.gpu('0000:%02x:00.0' % (3 + i), 0) for i in range(4)]
ORDINARY = {'hw:cpu_policy': 'shared'}


def weigh(weigher_classes, hosts, spec):
    handler = weights.HostWeightHandler()
    return handler.get_weighed_objects([cls() for cls in weigher_classes],
                                       hosts, spec)


class StrandingWeigherTest(test.NoDBTestCase):

    def ranked(self, hosts, extra_specs=ORDINARY):
        weighed = weigh([stranding.AcceleratorStrandingWeigher], hosts,
                        h.make_spec(extra_specs))
        return [(w.obj.host, round(w.weight, 6)) for w in weighed]

    def test_ordinary_server_host_without_accelerators_weighs_more(self):
        hosts = [h.make_host('gpu', devices=GPUS[:2]), h.make_host('plain')]
        self.assertEqual([('plain', 10.0), ('gpu', 0.0)],
                         self.ranked(hosts))

    def test_ordinary_server_fewer_free_accelerators_weigh_more(self):
        hosts = [h.make_host('four', devices=GPUS),
                 h.make_host('one', devices=GPUS, in_use=[
                     g.address for g in GPUS[:3]]),
                 h.make_host('two', devices=GPUS[:2])]
        self.assertEqual([('one', 10.0), ('two', round(10.0 * 2 / 3, 6)),
                          ('four', 0.0)], self.ranked(hosts))

    def test_unhealthy_devices_are_not_free(self):
        sick = [h.gpu(g.address, 0, healthy=False) for g in GPUS[:3]]
        hosts = [h.make_host('sick', devices=sick + GPUS[3:]),
                 h.make_host('two', devices=GPUS[:2])]
        self.assertEqual('sick', self.ranked(hosts)[0][0])

    def test_server_with_accelerators_is_neutral(self):
        hosts = [h.make_host('gpu', devices=GPUS), h.make_host('plain')]
        self.assertEqual({0.0},
                         {w for _, w in self.ranked(hosts, h.ONE_GPU)})

    def test_configured_multiplier_applies(self):
        self.flags(stranding_weight_multiplier=3.0, group='accelerator')
        hosts = [h.make_host('gpu', devices=GPUS), h.make_host('plain')]
        self.assertEqual([('plain', 3.0), ('gpu', 0.0)], self.ranked(hosts))

    def test_aggregate_overrides_multiplier(self):
        agg = objects.Aggregate(id=1, name='gpu-pool', hosts=['gpu', 'plain'],
                                metadata={'stranding_weight_multiplier': '0'})
        hosts = [h.make_host('gpu', devices=GPUS, aggregates=[agg]),
                 h.make_host('plain', aggregates=[agg])]
        self.assertEqual({0.0}, {w for _, w in self.ranked(hosts)})

    def test_all_weighers(self):
        self.assertEqual([stranding.AcceleratorStrandingWeigher,
                          spread.AcceleratorSpreadWeigher],
                         weighers.all_weighers())


class StrandingScenarioTest(test.NoDBTestCase):
    """The scenario stock Nova fails: hosts A (2 GPUs) and B (none), equal
    otherwise.  With every default Nova weigher (PCIWeigher at multiplier
    10 too), stock Nova landed ordinary servers B, A, B, B, A, A; with our
    weighers at their defaults every ordinary server lands on B while B has
    room, whatever RAM, CPU and disk spreading say."""

    WEIGHERS = ['nova.scheduler.weights.all_weighers',
                'cyborg_nova.weighers.all_weighers']

    def setUp(self):
        super().setUp()
        self.flags(pci_weight_multiplier=10.0, group='filter_scheduler')
        self.handler = weights.HostWeightHandler()
        self.weighers = [cls() for cls in self.handler.get_matching_classes(
            self.WEIGHERS)]

    def _host(self, name, devices):
        return h.make_host(
            name, devices=devices, uuid=name, vcpus_total=16, vcpus_used=0,
            free_ram_mb=32768, total_usable_ram_mb=32768,
            free_disk_mb=500 * 1024, total_usable_disk_gb=500,
            num_io_ops=0, num_instances=0, hypervisor_version=9000000,
            failed_builds=0, pci_stats=None, cell_uuid=None)

    def land(self):
        hosts = {'A': self._host('A', GPUS[:2]), 'B': self._host('B', [])}
        spec = h.make_spec(ORDINARY, vcpus=4, memory_mb=8192)
        spec.instance_group = None
        spec.image = objects.ImageMeta(properties=objects.ImageMetaProps())
        landed = []
        for _ in range(6):
            fitting = [hs for hs in hosts.values()
                       if hs.free_ram_mb >= 8192 and
                       hs.vcpus_total - hs.vcpus_used >= 4]
            best = self.handler.get_weighed_objects(
                self.weighers, fitting, spec)[0].obj
            landed.append(best.host)
            # What the scheduler consumes after each choice; B then looks
            # worse than A to every spreading weigher.
            best.free_ram_mb -= 8192
            best.vcpus_used += 4
            best.free_disk_mb -= 10 * 1024
            best.num_instances += 1
            best.num_io_ops += 1
        return landed

    def test_ordinary_servers_fill_the_host_without_gpus_first(self):
        self.assertEqual(['B', 'B', 'B', 'B', 'A', 'A'], self.land())

    def test_without_our_weighers_ordinary_servers_take_the_gpu_host(self):
        self.weighers = [cls() for cls in self.handler.get_matching_classes(
            self.WEIGHERS[:1])]
        self.assertIn('A', self.land()[:4])

    def test_multiplier_one_is_not_enough(self):
        # Why the default is 10: at 1.0 RAM/CPU/disk/I/O spreading wins.
        self.flags(stranding_weight_multiplier=1.0, group='accelerator')
        self.assertIn('A', self.land()[:4])
