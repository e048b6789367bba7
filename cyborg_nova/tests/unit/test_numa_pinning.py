"""The NUMA tuning driver: ``cyborg_nova.drivers.numa_pinning``."""

from nova import objects
from oslo_config import cfg
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova.drivers import base
from cyborg_nova.drivers import numa_pinning
from cyborg_nova import errors
from cyborg_nova.policy import numa_fit

GPU1 = '0000:af:00.0'


def nova_topology():
    """Nova's own host NUMA topology: node 0 shares CPUs 0-3 and dedicates
    4-7; node 1 shares 8-11 and dedicates 12-15 of which 12 and 13 are
    pinned; 2 threads per core."""
    objects.register_all()
    cells = []
    for node, shared, dedicated, pinned in ((0, {0, 1, 2, 3},
                                             {4, 5, 6, 7}, set()),
                                            (1, {8, 9, 10, 11},
                                             {12, 13, 14, 15}, {12, 13})):
        cells.append(objects.NUMACell(
            id=node, cpuset=shared, pcpuset=dedicated, memory=16384,
            memory_usage=1024 * (node + 1), cpu_usage=0, pinned_cpus=pinned,
            siblings=[{c, c + 1} for c in range(8 * node, 8 * node + 8, 2)],
            mempages=[], network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False)))
    return objects.NUMATopology(cells=cells)


class TuneTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        cn_conf.register_opts(self.conf)
        self.conf([], default_config_files=[], default_config_dirs=[])
        self.driver = numa_pinning.NumaPinningDriver(
            base.HostContext(conf=self.conf))

    def test_is_a_tuning_driver_without_devices(self):
        self.assertTrue(self.driver.tuning)
        self.assertEqual('numa_pinning', self.driver.name)
        self.assertEqual([], self.driver.discover())

    def test_cells_from_nova_topology(self):
        cells = numa_pinning.cells_from_nova(nova_topology())
        self.assertEqual(
            numa_fit.NumaCell(cpus={8, 9, 10, 11}, free_cpus={14, 15},
                              free_memory_mb=14336,
                              siblings=({8, 9}, {10, 11}, {12, 13},
                                        {14, 15})),
            cells[1])
        self.assertEqual([0, 1], sorted(cells))

    def test_shared_guest_on_nova_topology(self):
        got = self.driver.tune(
            numa_fit.GuestRequest(vcpus=2, memory_mb=2048,
                                  devices={GPU1: 1}),
            nova_topology())
        self.assertEqual(
            'vCPUs on node 1 (CPUs 8-11), memory strict on node 1: local to '
            '0000:af:00.0', got.explanation)
        self.assertEqual(frozenset({8, 9, 10, 11}), got.cpuset)

    def test_dedicated_guest_on_nova_topology(self):
        got = self.driver.tune(
            numa_fit.GuestRequest(vcpus=2, memory_mb=2048, dedicated=True,
                                  devices={GPU1: 1}),
            nova_topology())
        self.assertEqual((14, 15), got.pinning)
        self.assertEqual((1,), got.memory_nodes)

    def test_policy_defaults_to_the_configured_one(self):
        self.conf.set_override('default_numa_policy', 'required',
                               'accelerator')
        request = numa_fit.GuestRequest(vcpus=3, memory_mb=1024,
                                        dedicated=True, devices={GPU1: 1})
        exc = self.assertRaises(errors.NumaFitError, self.driver.tune,
                                request, nova_topology())
        self.assertIn('node 1 (local to 0000:af:00.0) has 2 free dedicated '
                      'CPUs', str(exc))

    def test_the_flavor_policy_overrides_the_default(self):
        self.conf.set_override('default_numa_policy', 'required',
                               'accelerator')
        request = numa_fit.GuestRequest(vcpus=3, memory_mb=1024,
                                        dedicated=True, devices={GPU1: 1},
                                        policy='preferred')
        got = self.driver.tune(request, nova_topology())
        self.assertFalse(got.aligned)
        self.assertFalse(got.constrained)

    def test_without_config_the_policy_is_preferred(self):
        driver = numa_pinning.NumaPinningDriver(base.HostContext())
        cells = {0: numa_fit.NumaCell(cpus={0, 1}, free_cpus={0, 1},
                                      free_memory_mb=512)}
        got = driver.tune(numa_fit.GuestRequest(vcpus=4, memory_mb=1024,
                                                devices=[0]), cells)
        self.assertIn('(NUMA policy preferred)', got.explanation)
