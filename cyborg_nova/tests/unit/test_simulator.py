"""The fleet simulator: file loaders and their errors, the pure metrics,
and a tiny end-to-end run through Nova's real scheduler code."""

import os
import tempfile
import textwrap

import testtools

from cyborg_nova.simulator import fleet
from cyborg_nova.simulator import metrics
from cyborg_nova.simulator import trace
from cyborg_nova.simulator import yamlfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
EXAMPLES = os.path.join(ROOT, 'etc', 'cyborg-nova', 'simulator')

FLEET = """\
hosts:
  - name: gpu
    numa_nodes:
      - {shared_cpus: 8, dedicated_cpus: 8, memory_gb: 64, gpus: 2}
      - {shared_cpus: 8, dedicated_cpus: 8, memory_gb: 64, gpus: 2}
  - name: cpu
    count: 2
    numa_nodes:
      - {shared_cpus: 16, dedicated_cpus: 0, memory_gb: 64}
"""

TRACE = """\
flavors:
  gpu.pinned: {vcpus: 4, ram_gb: 16, gpus: 1, dedicated: true}
  gpu.shared: {vcpus: 4, ram_gb: 16, gpus: 1}
  gpu.two: {vcpus: 4, ram_gb: 16, gpus: 2, dedicated: true}
  cpu.m: {vcpus: 4, ram_gb: 16}
events:
  - {create: s1, flavor: gpu.shared}
  - {create: c1, flavor: cpu.m}
  - {create: s2, flavor: gpu.shared}
  - {create: p1, flavor: gpu.pinned}
  - {create: c2, flavor: cpu.m}
  - {delete: s1}
  - {create: t1, flavor: gpu.two}
  - {create: c3, flavor: cpu.m}
  - {create: p2, flavor: gpu.pinned}
  - {create: s3, flavor: gpu.shared}
"""


class _Files(testtools.TestCase):
    def write(self, text):
        d = self.useFixture_tmp()
        path = os.path.join(d, 'f.yaml')
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))
        return path

    def useFixture_tmp(self):
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__('shutil').rmtree(d))
        return d


class TestFleetLoader(_Files):
    def test_loads_and_expands_counts(self):
        hosts = fleet.load(self.write(FLEET))
        self.assertEqual(['gpu', 'cpu-000', 'cpu-001'],
                         [h.name for h in hosts])
        self.assertEqual(4, hosts[0].gpus)
        self.assertEqual(64 * 1024, hosts[1].nodes[0].memory_mb)

    def test_wrong_type_names_file_line_and_field(self):
        path = self.write(FLEET.replace('gpus: 2}\n  - name: cpu',
                                        'gpus: many}\n  - name: cpu'))
        exc = self.assertRaises(yamlfile.SpecError, fleet.load, path)
        self.assertIn('%s:5: hosts[0].numa_nodes[1].gpus' % path, str(exc))
        self.assertIn("'many' is not a whole number", str(exc))

    def test_unknown_field(self):
        path = self.write(FLEET.replace('count: 2', 'cuont: 2'))
        exc = self.assertRaises(yamlfile.SpecError, fleet.load, path)
        self.assertIn('%s:7: hosts[1].cuont: unknown field' % path,
                      str(exc))

    def test_missing_field(self):
        path = self.write(FLEET.replace('memory_gb: 64}\n"',
                                        '}').replace(
            '{shared_cpus: 16, dedicated_cpus: 0, memory_gb: 64}',
            '{shared_cpus: 16}'))
        exc = self.assertRaises(yamlfile.SpecError, fleet.load, path)
        self.assertIn(':9: hosts[1].numa_nodes[0]: missing field '
                      "'memory_gb'", str(exc))

    def test_bad_yaml(self):
        exc = self.assertRaises(yamlfile.SpecError, fleet.load,
                                self.write('hosts: [\n  {a: 1\n'))
        self.assertIn('not valid YAML', str(exc))


class TestTraceLoader(_Files):
    def test_loads_events(self):
        flavors, events = trace.load(self.write(TRACE))
        self.assertEqual(4, len(flavors))
        self.assertEqual(('create', 's1', 'gpu.shared'),
                         (events[0].action, events[0].server,
                          events[0].flavor.name))
        self.assertEqual(('delete', 's1'), (events[5].action,
                                            events[5].server))

    def test_unknown_flavor(self):
        path = self.write(TRACE.replace('flavor: cpu.m}\n  - {create: s2',
                                        'flavor: cpu.x}\n  - {create: s2'))
        exc = self.assertRaises(yamlfile.SpecError, trace.load, path)
        self.assertIn('%s:8: events[1].flavor: unknown flavor' % path,
                      str(exc))

    def test_delete_of_unknown_server(self):
        path = self.write(TRACE.replace('delete: s1', 'delete: zz'))
        exc = self.assertRaises(yamlfile.SpecError, trace.load, path)
        self.assertIn(':12: events[5].delete: server zz does not exist',
                      str(exc))

    def test_generator_is_seeded_and_balanced(self):
        text = TRACE.split('events:')[0] + textwrap.dedent("""\
            generator:
              seed: 3
              requests: 50
              mix: {gpu.pinned: 1, cpu.m: 1}
              lifetime: [5, 10]
            """)
        path = self.write(text)
        _, a = trace.load(path)
        _, b = trace.load(path)
        self.assertEqual(a, b)
        self.assertEqual(50, sum(1 for e in a if e.action == 'create'))
        live = set()
        for e in a:
            if e.action == 'create':
                live.add(e.server)
            else:
                live.remove(e.server)

    def test_bad_lifetime(self):
        text = TRACE.split('events:')[0] + (
            'generator: {requests: 5, mix: {cpu.m: 1}, lifetime: [9, 2]}\n')
        exc = self.assertRaises(yamlfile.SpecError, trace.load,
                                self.write(text))
        self.assertIn(':6: generator.lifetime: longest 2 is below', str(exc))

    def test_examples_load(self):
        hosts = fleet.load(os.path.join(EXAMPLES, 'example-fleet.yaml'))
        self.assertEqual(40, len(hosts))
        self.assertEqual(128, sum(h.gpus for h in hosts))
        trace.load(os.path.join(EXAMPLES, 'example-trace.yaml'))


class TestMetrics(testtools.TestCase):
    R = metrics.Record

    def test_shares(self):
        recs = [self.R(1, True, 0.1, 5, aligned=True),
                self.R(2, True, 0.5, 7, aligned=False, best_topology=True),
                self.R(1, False, 0.9, 9),
                self.R(0, True, 0.2, 1)]
        self.assertAlmostEqual(2 / 3, metrics.acceptance(recs))
        self.assertAlmostEqual(0.5, metrics.aligned_share(recs))
        self.assertEqual(1.0, metrics.best_topology_share(recs))
        self.assertEqual(6, metrics.median_time_us(recs))
        self.assertIsNone(metrics.acceptance([self.R(0, True, 0, 1)]))

    def test_stranded_counts_only_hosts_plain_servers_filled(self):
        small = trace.Flavor('g', vcpus=4, memory_mb=1024, gpus=1)
        U = metrics.HostUse
        hosts = [U(3, 2, 0, 8000, 1),      # short of vCPUs: stranded
                 U(2, 10, 0, 512, 2),      # short of memory: stranded
                 U(4, 2, 0, 8000, 0),      # no plain server: not counted
                 U(1, 10, 0, 8000, 3),     # still fits
                 U(0, 0, 0, 0, 5)]         # no free GPU
        self.assertEqual(5, metrics.stranded_gpus(hosts, small))
        self.assertEqual(0, metrics.stranded_gpus(hosts, None))

    def test_stddev_and_buckets(self):
        self.assertEqual(1.0, metrics.stddev([1, 3]))
        recs = [self.R(1, True, 0.05, 1), self.R(1, False, 0.07, 1),
                self.R(1, True, 0.95, 1), self.R(0, False, 0.5, 1)]
        self.assertEqual([(0.05, 0.5, 2), (0.95, 1.0, 1)],
                         [(round(c, 2), s, n) for c, s, n in
                          metrics.by_load(recs, lambda r: r.accepted)])


class TestEndToEnd(_Files):
    def test_ours_accepts_and_aligns_at_least_as_well_as_nova(self):
        from oslo_config import fixture as config_fixture

        import nova.conf
        from nova.pci import request as pci_request

        from cyborg_nova.simulator import engine

        conf = self.useFixture(config_fixture.Config(nova.conf.CONF))

        def set_override(name, value, group):
            conf.config(group=group, **{name: value})

        engine.configure(set_override)
        self.addCleanup(pci_request.get_alias_from_config.cache_clear)
        hosts = fleet.load(self.write(FLEET))
        flavors, events = trace.load(self.write(TRACE))
        smallest = flavors['gpu.pinned']
        ours = engine.run('cyborg', hosts, events, smallest, progress=False)
        nova = engine.run('nova', hosts, events, smallest, progress=False)
        o, n = ours.summary(), nova.summary()
        self.assertEqual(9, len(ours.records))
        self.assertGreaterEqual(o.acceptance, n.acceptance)
        # Nova's shared-CPU GPU guests float over both nodes; ours are
        # confined to their GPU's node.
        self.assertEqual(1.0, o.aligned)
        self.assertLess(n.aligned, o.aligned)
        # Every placed server holds what it asked for, nothing twice.
        for sim in (ours, nova):
            held = [a for s in sim.servers.values() for a in s.devices]
            self.assertEqual(len(held), len(set(held)))
            for s in sim.servers.values():
                self.assertEqual(s.flavor.gpus, len(s.devices))
        # Ordinary servers went to the CPU-only hosts under ours.
        self.assertTrue(all(s.host.name.startswith('cpu')
                            for s in ours.servers.values()
                            if not s.flavor.gpus))
