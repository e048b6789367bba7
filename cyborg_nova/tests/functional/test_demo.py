"""The demo's workload (``make demo``), asserted for both policies.

Each test runs :data:`cyborg_nova.demo.scenario.WORKLOAD` on
:data:`~cyborg_nova.demo.scenario.FLEET` exactly as the demo does.  For
stock Nova only what is the same on every run is asserted: which of two
equal GPU hosts wins a tie is not.
"""

import unittest

from cyborg_nova.demo import report
from cyborg_nova.demo import scenario
from cyborg_nova.tests.functional import gpu_base

FLEET = scenario.FLEET
GPU_HOSTS = {h.name for h in FLEET.hosts if h.gpus}


def node_cpus(node, cpus):
    return {c for c in cpus if FLEET.node_of(c) == node}


class _Checks(object):

    def run_and_check_common(self):
        outcome = self.run_workload()
        self.assertEqual([r.name for r in scenario.WORKLOAD],
                         [p.request.name for p in outcome.placed])
        self.assertEqual(
            [], [(p.request.name, p.fault) for p in outcome.placed
                 if p.outcome != report.ACTIVE])
        gpus = [(p.host, a) for p in outcome.placed for a, _ in p.devices]
        # Every GPU of the fleet, each to one server.
        expected = {(h.name, a) for h in FLEET.hosts
                    for a in h.gpu_addresses()}
        self.assertEqual(sorted(expected), sorted(gpus))
        for p in outcome.placed:
            self.assertEqual(p.request.gpus, len(p.devices), p)
            if not p.request.gpus:
                # The CPU-only host had room for every ordinary server, so
                # "while cpu-c had room" covers all of them.
                self.assertTrue(p.cpu_host_had_room, p)
        return outcome


class TestDemoWithCyborgNova(_Checks, scenario.CyborgNovaScenario):

    def test_gpu_servers_are_numa_local_and_others_keep_off_gpu_hosts(self):
        outcome = self.run_and_check_common()
        for p in outcome.placed:
            if not p.request.gpus:
                self.assertEqual('cpu-c', p.host, p)
                continue
            self.assertIn(p.host, GPU_HOSTS)
            [(address, node)] = p.devices
            self.assertIs(True, report.aligned(p, FLEET), p)
            self.assertEqual({node}, set(p.memory_nodes), p)
            if p.request.dedicated:
                self.assertTrue(p.pinned, p)
                self.assertEqual(p.request.vcpus, len(p.cpus))
                self.assertLessEqual(
                    set(p.cpus), node_cpus(node, FLEET.dedicated_cpus))
            else:
                self.assertFalse(p.pinned, p)
                self.assertEqual(node_cpus(node, FLEET.shared_cpus),
                                 set(p.cpus), p)
        self.assertEqual(
            report.Summary(requested=9, placed=9, gpu_placed=4,
                           gpu_aligned=4, ordinary=5,
                           ordinary_on_gpu_hosts=0,
                           ordinary_on_gpu_hosts_needlessly=0,
                           gpu_refused_while_free=0),
            report.summarize(outcome, FLEET))
        # What the demo shows is what libvirt would accept.
        for configs in self.guest_configs.values():
            self.assertIsNone(gpu_base.validate_domain_xml(
                configs[-1].to_xml()))


class TestDemoWithStockNova(_Checks, scenario.StockNovaScenario):

    def test_shared_cpu_gpu_servers_float_and_others_land_on_gpu_hosts(self):
        outcome = self.run_and_check_common()
        by_name = {p.request.name: p for p in outcome.placed}
        for p in outcome.placed:
            if not p.request.gpus:
                continue
            [(address, node)] = p.devices
            if p.request.dedicated:
                # A guest NUMA topology: Nova's legacy PCI NUMA policy
                # keeps it on its GPU's node.
                self.assertIs(True, report.aligned(p, FLEET), p)
                self.assertTrue(p.pinned, p)
                self.assertLessEqual(
                    set(p.cpus), node_cpus(node, FLEET.dedicated_cpus))
                self.assertEqual({node}, set(p.memory_nodes), p)
            else:
                # No guest NUMA topology: vCPUs over every shared CPU of
                # both nodes, memory unbound, wherever the GPU is.
                self.assertIs(False, report.aligned(p, FLEET), p)
                self.assertFalse(p.pinned, p)
                self.assertEqual(set(FLEET.shared_cpus), set(p.cpus), p)
                self.assertIsNone(p.memory_nodes, p)
        # RAM and CPU spreading outweighs PCIWeigher: the 2nd and 3rd
        # ordinary servers go to the (then emptier) GPU hosts although
        # the CPU-only host has room; the 4th and 5th, booted after the
        # GPU servers, find the CPU-only host emptiest.
        self.assertEqual(
            ['cpu-c', 'gpu', 'gpu', 'cpu-c', 'cpu-c'],
            ['gpu' if by_name[n].host in GPU_HOSTS else by_name[n].host
             for n in ('web-1', 'web-2', 'web-3', 'web-4', 'web-5')])
        self.assertEqual(
            report.Summary(requested=9, placed=9, gpu_placed=4,
                           gpu_aligned=1, ordinary=5,
                           ordinary_on_gpu_hosts=2,
                           ordinary_on_gpu_hosts_needlessly=2,
                           gpu_refused_while_free=0),
            report.summarize(outcome, FLEET))


class TestDemoReport(unittest.TestCase):
    """The judging and printing, on hand-made results."""

    def _placed(self, **kw):
        kw.setdefault('request', report.Request('g', gpus=1))
        kw.setdefault('outcome', report.ACTIVE)
        kw.setdefault('host', 'gpu-a')
        return report.Placed(**kw)

    def test_cpu_ranges(self):
        for cpus, text in (({0, 1, 4, 5}, '0-1,4-5'), ({3}, '3'),
                           ({0, 2, 3, 4, 7}, '0,2-4,7'), (set(), '')):
            self.assertEqual(text, report.cpu_ranges(cpus))

    def test_aligned_needs_cpus_and_memory_on_the_gpu_node(self):
        dev = (('0000:10:00.0', 1),)
        cases = [
            (dict(devices=dev, cpus=frozenset({4, 5}),
                  memory_nodes=frozenset({1})), True),
            (dict(devices=dev, cpus=frozenset({4, 5}),
                  memory_nodes=None), False),
            (dict(devices=dev, cpus=frozenset({0, 4}),
                  memory_nodes=frozenset({1})), False),
            (dict(devices=dev, cpus=None,
                  memory_nodes=frozenset({1})), False),
            (dict(devices=(('0000:10:00.0', None),),
                  cpus=frozenset({4}), memory_nodes=frozenset({1})), False),
            (dict(request=report.Request('w'), cpus=frozenset({0})), None),
            (dict(outcome=report.REFUSED, host=None), None),
        ]
        for kw, expected in cases:
            self.assertIs(expected, report.aligned(self._placed(**kw), FLEET),
                          kw)

    def test_refused_while_free_counts_only_when_gpus_were_free(self):
        refused = report.Request('g', gpus=1)
        outcome = report.Outcome('p', 'd', (
            self._placed(outcome=report.REFUSED, host=None,
                         request=refused, free_gpus_before=1),
            self._placed(outcome=report.REFUSED, host=None,
                         request=refused, free_gpus_before=0),
        ))
        self.assertEqual(1, report.summarize(
            outcome, FLEET).gpu_refused_while_free)

    def test_render_shows_each_server_and_the_summary(self):
        outcome = report.Outcome('ours', 'how', (
            self._placed(devices=(('0000:10:00.0', 1),),
                         cpus=frozenset({4, 5}),
                         memory_nodes=frozenset({1})),
            self._placed(request=report.Request('late', gpus=1),
                         outcome=report.REFUSED, host=None)))
        text = report.render([outcome], FLEET, scenario.WORKLOAD)
        self.assertIn('0000:10:00.0 (1)  4-5 shared (1)', text)
        self.assertRegex(text, r'\n +late +REFUSED: No valid host\n')
        self.assertIn('GPU servers NUMA-aligned', text)
        for line in text.splitlines():
            self.assertLessEqual(len(line), 90, line)
