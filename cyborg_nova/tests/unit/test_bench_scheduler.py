"""The scheduler benchmark's correctness check, on a fleet of 20 hosts:
``cyborg_nova.tests.bench.bench_scheduler`` (timings are not tested)."""

import copy

from oslo_config import fixture as config_fixture
import testtools

import nova.conf
from nova.pci import request as pci_request

from cyborg_nova.tests.bench import bench_scheduler
from cyborg_nova.tests.bench import hosts

CONF = nova.conf.CONF
SHARED = hosts.Request(dedicated=False)
DEDICATED = hosts.Request(dedicated=True)


class BenchTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        fixture = self.useFixture(config_fixture.Config(CONF))

        def set_override(name, value, group):
            if group:
                fixture.config(group=group, **{name: value})
            else:
                fixture.config(**{name: value})

        bench_scheduler.configure(set_override)
        self.addCleanup(pci_request.get_alias_from_config.cache_clear)


class TestPipelinesAgree(BenchTestCase):
    """Ours and Nova's GPU pipeline pass the same hosts: exactly those
    that can take the server."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.profiles = hosts.fleet(20)

    def setUp(self):
        super().setUp()
        self.passed, self.problems = bench_scheduler.check_fleet(20)

    def expected(self, request):
        return {p.name for p in self.profiles if hosts.can_fit(p, request)}

    def test_no_problem_found(self):
        self.assertEqual([], self.problems)

    def test_ours_and_nova_pass_the_same_hosts(self):
        for request in (SHARED, DEDICATED):
            policy = request.cpu_policy
            self.assertEqual(self.passed[('nova', policy)],
                             self.passed[('ours', policy)], policy)
            self.assertEqual(self.expected(request),
                             self.passed[('ours', policy)], policy)
            for diagnostic in ('ours-no-ntf', 'ours-nova-ntf'):
                self.assertEqual(self.expected(request),
                                 self.passed[(diagnostic, policy)],
                                 (diagnostic, policy))

    def test_no_host_without_gpus_passes(self):
        gpu_hosts = {p.name for p in self.profiles if p.has_gpus}
        for name in ('nova', 'ours', 'ours-no-ntf', 'ours-nova-ntf'):
            for request in (SHARED, DEDICATED):
                passed = self.passed[(name, request.cpu_policy)]
                self.assertTrue(passed)
                self.assertLessEqual(passed, gpu_hosts)

    def test_the_fleet_tells_cpu_policies_apart(self):
        # GPUs free only where the dedicated CPUs are all pinned: a
        # shared-CPU server fits, a dedicated-CPU one cannot be NUMA-local.
        name = next(p.name for p in self.profiles
                    if p.variant == 'gpu-free-where-pcpus-full')
        for pipeline in ('nova', 'ours'):
            self.assertIn(name, self.passed[(pipeline, 'shared')])
            self.assertNotIn(name, self.passed[(pipeline, 'dedicated')])

    def test_busy_and_disabled_gpu_hosts_are_rejected(self):
        names = {p.name for p in self.profiles
                 if p.variant in ('gpu-all-busy', 'gpu-idle-disabled')}
        self.assertEqual(2, len(names))
        for key, passed in self.passed.items():
            if key[0] in ('nova', 'ours', 'ours-no-ntf', 'ours-nova-ntf'):
                self.assertFalse(names & passed, key)

    def test_floor_passes_every_enabled_host(self):
        enabled = {p.name for p in self.profiles if not p.disabled}
        self.assertEqual(enabled, self.passed[('floor', 'shared')])


class TestOperatorPipeline(BenchTestCase):

    def test_ours_is_the_operator_configuration(self):
        self.assertEqual(('ComputeFilter', 'AcceleratorNUMAFilter',
                          'AcceleratorAwareNUMATopologyFilter'),
                         bench_scheduler.OURS.filters)
        self.assertNotIn('NUMATopologyFilter', bench_scheduler.OURS.filters)
        self.assertFalse(bench_scheduler.OURS.diagnostic)


class TestCheckFindsMistakes(BenchTestCase):
    """The check is not vacuous: wrong answers are reported."""

    def setUp(self):
        super().setUp()
        self.fleet = bench_scheduler.Fleet(20)
        self.profiles = self.fleet.profiles

    def test_a_host_without_gpus_in_the_result(self):
        states = self.fleet.prepare('ours', SHARED, 20)
        good = [h for h, p in zip(states, self.profiles)
                if hosts.can_fit(p, SHARED)]
        cpu_host = next(h for h, p in zip(states, self.profiles)
                        if not p.has_gpus and not p.disabled)
        problems = bench_scheduler.check(
            self.fleet, self.profiles, SHARED, bench_scheduler.OURS,
            good + [cpu_host])
        self.assertTrue(any('without GPUs' in p for p in problems),
                        problems)

    def test_a_missing_host(self):
        states = self.fleet.prepare('nova', DEDICATED, 20)
        good = [h for h, p in zip(states, self.profiles)
                if hosts.can_fit(p, DEDICATED)]
        problems = bench_scheduler.check(
            self.fleet, self.profiles, DEDICATED, bench_scheduler.NOVA,
            good[1:])
        self.assertEqual(1, len(problems), problems)
        self.assertIn('wrongly rejected [%s' % good[0].host, problems[0])

    def test_a_candidate_on_the_wrong_node(self):
        states = self.fleet.prepare('ours', DEDICATED, 20)
        good = [h for h, p in zip(states, self.profiles)
                if hosts.can_fit(p, DEDICATED)]
        # Node 0's dedicated CPUs are all pinned: its GPU candidate is not
        # NUMA-local; the filter must have dropped it.
        host = next(h for h in good if self.fleet.by_name[h.host].variant ==
                    'gpu-node0-pcpus-full')
        self.assertEqual(2, len(host.allocation_candidates))
        problems = bench_scheduler.check(
            self.fleet, self.profiles, DEDICATED, bench_scheduler.OURS,
            good)
        self.assertTrue(any('kept a candidate on node(s) [0]' in p
                            for p in problems), problems)

    def _dedicated_result(self):
        states = self.fleet.prepare('ours', DEDICATED, 20)
        pipeline = bench_scheduler.Pipeline(bench_scheduler.OURS)
        result = pipeline.sorted_hosts(bench_scheduler.ours_spec(DEDICATED),
                                       states)
        self.assertEqual([], bench_scheduler.check(
            self.fleet, self.profiles, DEDICATED, bench_scheduler.OURS,
            result))
        return result

    def test_limits_without_the_first_candidates_marker(self):
        result = self._dedicated_result()
        del result[0].limits['numa_topology']
        problems = bench_scheduler.check(
            self.fleet, self.profiles, DEDICATED, bench_scheduler.OURS,
            result)
        self.assertEqual(1, len(problems), problems)
        self.assertIn('not the markers of its first candidate', problems[0])

    def test_a_claim_that_nova_would_place_elsewhere(self):
        from nova import objects

        result = self._dedicated_result()
        host = next(h for h in result if len(h.allocation_candidates) == 2)
        # The right markers, but cells that do not carry them: Nova's
        # fitting ignores the markers and picks its own node.
        host.numa_topology = copy.deepcopy(host.numa_topology)
        for cell in host.numa_topology.cells:
            cell.network_metadata = objects.NetworkMetadata(
                physnets=set(), tunneled=False)
        host.allocation_candidates.reverse()
        limits = host.limits['numa_topology']
        node = self.fleet.provider_node[next(
            rp for rp in host.allocation_candidates[0]['allocations']
            if rp in self.fleet.provider_node)]
        limits.network_metadata.physnets = {
            'cyborg-nova-numa-node-%d' % node}
        problems = bench_scheduler.check(
            self.fleet, self.profiles, DEDICATED, bench_scheduler.OURS,
            [host])
        self.assertTrue(any('claim would place the guest on node(s) [%d]'
                            % (1 - node) in p for p in problems), problems)
