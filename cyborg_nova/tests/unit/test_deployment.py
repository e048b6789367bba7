"""The deployment check: which Nova and Placement settings work against
accelerators (:mod:`cyborg_nova.policy.deployment`), how they are read
(:mod:`cyborg_nova.deployment_check`) and ``cyborg-nova check``."""

import json
import logging
import os
import subprocess
import sys

import fixtures
import testscenarios
import testtools

import cyborg_nova
from cyborg_nova import deployment_check
from cyborg_nova import device
from cyborg_nova.policy import deployment
from cyborg_nova.tests.fixtures import hosts

REPO_ROOT = os.path.dirname(os.path.dirname(cyborg_nova.__file__))
GOOD_FILTERS = ['ComputeFilter', 'AcceleratorNUMAFilter',
                'AcceleratorAwareNUMATopologyFilter']
GOOD_WEIGHERS = ['nova.scheduler.weights.all_weighers',
                 'cyborg_nova.weighers.all_weighers']


def levels(findings):
    return [(f.level, f.setting) for f in findings]


class PlacementTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('defaults -> only the randomize warning',
         dict(args=dict(randomize=False, max_candidates=-1,
                        strategy='depth-first'),
              expect=[('warning',
                       '[placement] randomize_allocation_candidates')])),
        ('randomized, no limit -> fine',
         dict(args=dict(randomize=True, max_candidates=-1,
                        strategy='depth-first'),
              expect=[('ok', '[placement] randomize_allocation_candidates')])),
        ('a limit, depth-first -> hosts left out',
         dict(args=dict(randomize=True, max_candidates=1000,
                        strategy='depth-first'),
              expect=[('warning', '[placement] max_allocation_candidates'),
                      ('ok', '[placement] randomize_allocation_candidates')])),
        ('a limit, breadth-first -> fine',
         dict(args=dict(randomize=True, max_candidates=1000,
                        strategy='breadth-first'),
              expect=[('ok', '[placement] randomize_allocation_candidates'),
                      ('ok', '[placement] max_allocation_candidates')])),
        ('wide-tree workaround on -> harmless, said so',
         dict(args=dict(randomize=True, max_candidates=-1,
                        strategy='depth-first', wide_trees=True),
              expect=[('ok', '[placement] randomize_allocation_candidates'),
                      ('ok', '[workarounds] '
                             'optimize_for_wide_provider_trees')])),
    ]

    def test_findings(self):
        self.assertEqual(self.expect,
                         levels(deployment.check_placement(**self.args)))


class SchedulerTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('ours, in order, with our weighers -> fine',
         dict(filters=GOOD_FILTERS, expect=[])),
        ('our filter missing',
         dict(filters=['ComputeFilter', 'NUMATopologyFilter'],
              expect=['AcceleratorNUMAFilter is not enabled'])),
        ('Nova\'s NUMA filter next to its replacement',
         dict(filters=GOOD_FILTERS + ['NUMATopologyFilter'],
              expect=['remove NUMATopologyFilter'])),
        ('our NUMA filter before the accelerator filter',
         dict(filters=['AcceleratorAwareNUMATopologyFilter',
                       'AcceleratorNUMAFilter'],
              expect=['comes after AcceleratorAwareNUMATopologyFilter'])),
        ('Nova\'s NUMA filter after ours overwrites its limits',
         dict(filters=['AcceleratorNUMAFilter', 'NUMATopologyFilter'],
              expect=['comes before Nova\'s NUMATopologyFilter'])),
        ('Nova\'s NUMA filter before ours works',
         dict(filters=['NUMATopologyFilter', 'AcceleratorNUMAFilter'],
              expect=[])),
        ('no NUMA filter at all',
         dict(filters=['AcceleratorNUMAFilter'],
              expect=['no NUMA topology filter is enabled'])),
        ('full class paths count like names',
         dict(filters=['cyborg_nova.filters.accelerator_filter.'
                       'AcceleratorNUMAFilter',
                       'cyborg_nova.filters.numa_topology_filter.'
                       'AcceleratorAwareNUMATopologyFilter'], expect=[])),
        ('Nova\'s weighers only',
         dict(filters=GOOD_FILTERS,
              weighers=['nova.scheduler.weights.all_weighers'],
              expect=['AcceleratorStrandingWeigher, AcceleratorSpreadWeigher '
                      'not enabled'])),
        ('our weighers by class',
         dict(filters=GOOD_FILTERS,
              weighers=['cyborg_nova.weighers.stranding.'
                        'AcceleratorStrandingWeigher',
                        'cyborg_nova.weighers.spread.'
                        'AcceleratorSpreadWeigher'], expect=[])),
        ('too few Placement results for the groups a host has',
         dict(filters=GOOD_FILTERS, max_results=50, groups=4,
              expect=['as few as 12 hosts may be considered'])),
        ('the default 1000 results with 4 groups a host -> fine',
         dict(filters=GOOD_FILTERS, max_results=1000, groups=4, expect=[])),
    ]

    weighers = GOOD_WEIGHERS
    max_results = 1000
    groups = None

    def test_findings(self):
        found = deployment.check_scheduler(self.filters, self.weighers,
                                           self.max_results, self.groups)
        warnings = [f.message for f in found if f.level != deployment.OK]
        self.assertEqual(len(self.expect), len(warnings), warnings)
        for text, message in zip(self.expect, warnings):
            self.assertIn(text, message)


class ComputeTest(testtools.TestCase):

    def test_ours_alone_is_fine(self):
        found = deployment.check_compute(deployment.COMPUTE_DRIVER, [],
                                         ['nvidia-223'])
        self.assertEqual(['ok'], [f.level for f in found])

    def test_stock_libvirt_driver_is_an_error(self):
        [found] = deployment.check_compute('libvirt.LibvirtDriver', [], [])
        self.assertEqual(('error', '[DEFAULT] compute_driver'),
                         (found.level, found.setting))
        self.assertIn('set compute_driver = cyborg_nova.'
                      'AcceleratedLibvirtDriver', found.message)

    def test_both_mdev_managers_is_an_error_naming_the_types(self):
        [found] = deployment.check_compute(
            deployment.COMPUTE_DRIVER, ['nvidia-223', 'nvidia-35'],
            ['nvidia-223'])
        self.assertEqual('[devices] enabled_mdev_types', found.setting)
        self.assertIn('nvidia-223, nvidia-35 set as well as [accelerator] '
                      'enabled_mdev_types (both name nvidia-223)',
                      found.message)

    def test_devices_nova_also_passes_through_are_named(self):
        [found] = deployment.check_compute(
            deployment.COMPUTE_DRIVER, [], [],
            ['0000:20:00.0', '0000:10:00.0'])
        self.assertIn('matches 0000:10:00.0, 0000:20:00.0, which '
                      'cyborg-nova also offers', found.message)

    def test_exit_status_follows_nova_status(self):
        ok = deployment.Finding(deployment.OK, 's', 'm')
        warn = deployment.Finding(deployment.WARNING, 's', 'm')
        error = deployment.Finding(deployment.ERROR, 's', 'm')
        self.assertEqual([0, 1, 2, 0], [
            deployment.exit_status(f)
            for f in ([ok], [ok, warn], [warn, error, ok], [])])
        self.assertEqual([error, warn, ok],
                         deployment.worst_first([ok, error, warn]))


class ReadPlacementConfTest(testtools.TestCase):

    def write(self, text):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'placement.conf')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_values_and_defaults(self):
        settings, problem = deployment_check.read_placement_conf(self.write(
            '[placement]\nrandomize_allocation_candidates = yes\n'
            'max_allocation_candidates = 500\n'
            '[workarounds]\noptimize_for_wide_provider_trees = True\n'))
        self.assertIsNone(problem)
        self.assertEqual(dict(randomize=True, max_candidates=500,
                              strategy='depth-first', wide_trees=True),
                         settings)

    def test_an_empty_file_is_placement_defaults(self):
        settings, _ = deployment_check.read_placement_conf(self.write(''))
        self.assertEqual(dict(randomize=False, max_candidates=-1,
                              strategy='depth-first', wide_trees=False),
                         settings)

    def test_a_bad_value_is_named(self):
        for text, named in (
                ('[placement]\nrandomize_allocation_candidates = maybe\n',
                 'maybe'),
                ('[placement]\nmax_allocation_candidates = many\n', 'many')):
            path = self.write(text)
            settings, problem = deployment_check.read_placement_conf(path)
            self.assertIsNone(settings)
            self.assertIn(path, problem)
            self.assertIn(named, problem)

    def test_not_ini_is_a_problem_not_a_crash(self):
        settings, problem = deployment_check.read_placement_conf(
            self.write('no section header\n'))
        self.assertIsNone(settings)
        self.assertIn('cannot read', problem)

    def test_a_missing_file_warns_only_when_the_operator_named_it(self):
        missing = '/nonexistent/placement.conf'
        [named] = deployment_check.placement_findings(missing)
        [default] = deployment_check.placement_findings(missing,
                                                        explicit=False)
        self.assertEqual(('warning', 'ok'), (named.level, default.level))
        self.assertIn('cyborg-nova check --placement-config-file',
                      named.message)


class NovaPciOverlapTest(testtools.TestCase):
    """Nova's own ``[pci] device_spec`` parser decides what it matches."""

    def devices(self):
        gpu = device.Device(address='0000:10:00.0', vendor_id='10de',
                            product_id='2330')
        fpga = device.Device(address='0000:20:00.0', vendor_id='1172',
                             product_id='5052')
        denied = device.Device(address='0000:30:00.0', vendor_id='10de',
                               product_id='2330', reasons=('denied',))
        return [gpu, fpga, denied]

    def test_vendor_product_spec(self):
        spec = [json.dumps({'vendor_id': '10de', 'product_id': '2330'})]
        self.assertEqual(['0000:10:00.0'], deployment_check.nova_pci_overlap(
            spec, self.devices()))

    def test_address_spec(self):
        spec = [json.dumps({'address': '0000:20:00.0'})]
        self.assertEqual(['0000:20:00.0'], deployment_check.nova_pci_overlap(
            spec, self.devices()))

    def test_nothing_configured(self):
        self.assertEqual([], deployment_check.nova_pci_overlap(
            [], self.devices()))

    def test_a_spec_nova_refuses_is_logged_not_raised(self):
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        self.assertEqual([], deployment_check.nova_pci_overlap(
            [json.dumps({'address': 'zz:zz'})], self.devices()))
        self.assertIn('[pci] device_spec could not be parsed', log.output)


class LogOnceTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.deployment_check._logged', set()))
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.INFO))

    def test_each_level_logged_once(self):
        findings = [deployment.Finding(deployment.ERROR, 'a', 'bad'),
                    deployment.Finding(deployment.WARNING, 'b', 'risky'),
                    deployment.Finding(deployment.OK, 'c', 'fine')]
        deployment_check.log_once('k', findings)
        deployment_check.log_once('k', findings)
        lines = self.log.output.splitlines()
        self.assertEqual(['Deployment check: ERROR: a: bad',
                          'Deployment check: WARNING: b: risky',
                          'Deployment check: OK: c: fine'], lines)

    def test_a_failing_check_never_raises(self):
        def broken():
            raise RuntimeError('no [pci] group')
        deployment_check.check_and_log('k', broken)
        self.assertIn('Deployment check (k) could not run: no [pci] group',
                      self.log.output)


class CheckCommandTest(testtools.TestCase):
    """``cyborg-nova check`` as an operator runs it: its own process."""

    def run_check(self, nova_conf, placement_conf, *extra):
        tmp = self.useFixture(fixtures.TempDir()).path
        root = os.path.join(tmp, 'sys')
        os.makedirs(root)
        hosts.gpu_host(root, [0])
        paths = []
        for name, text in (('nova.conf', nova_conf % {'root': root}),
                           ('placement.conf', placement_conf)):
            paths.append(os.path.join(tmp, name))
            with open(paths[-1], 'w') as f:
                f.write(text)
        env = dict(os.environ, PYTHONPATH=REPO_ROOT,
                   OS_NOVA_DISABLE_EVENTLET_PATCHING='1')
        return subprocess.run(
            [sys.executable, '-m', 'cyborg_nova.cmd.main', 'check',
             '--config-file', paths[0], '--placement-config-file', paths[1]]
            + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, timeout=120, cwd=REPO_ROOT)

    def test_a_good_deployment_exits_0(self):
        proc = self.run_check(
            '[DEFAULT]\ncompute_driver = cyborg_nova.AcceleratedLibvirtDriver'
            '\n[filter_scheduler]\nenabled_filters = ComputeFilter,'
            'AcceleratorNUMAFilter,AcceleratorAwareNUMATopologyFilter\n'
            'weight_classes = nova.scheduler.weights.all_weighers,'
            'cyborg_nova.weighers.all_weighers\n'
            '[accelerator]\nsysfs_root = %(root)s\n',
            '[placement]\nrandomize_allocation_candidates = True\n')
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('compute (nova.conf, 1 accelerators found):',
                      proc.stdout)
        self.assertTrue(proc.stdout.endswith('result: all fine\n'))
        self.assertEqual('', proc.stderr)

    def test_every_problem_is_listed_and_the_worst_decides(self):
        proc = self.run_check(
            '[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n'
            '[pci]\ndevice_spec = {"vendor_id": "10de"}\n'
            '[accelerator]\nsysfs_root = %(root)s\n',
            '[placement]\nmax_allocation_candidates = 100\n')
        self.assertEqual(2, proc.returncode, proc.stdout + proc.stderr)
        for text in ('WARNING [filter_scheduler] weight_classes',
                     'WARNING [placement] randomize_allocation_candidates',
                     'WARNING [placement] max_allocation_candidates',
                     'ERROR   [DEFAULT] compute_driver',
                     'ERROR   [pci] device_spec: matches 0000:10:00.0',
                     'result: error'):
            self.assertIn(text, proc.stdout)

    def test_few_placement_results_for_the_groups_of_this_host(self):
        proc = self.run_check(
            '[scheduler]\nmax_placement_results = 20\n'
            '[accelerator]\nsysfs_root = %(root)s\n', '[placement]\n',
            '--only', 'scheduler', '--only', 'compute')
        self.assertIn('WARNING [scheduler] max_placement_results: 20: a '
                      'host offers up to 1 candidate(s) (one per locality '
                      'group), so as few as 20 hosts', proc.stdout)

    def test_only_one_part(self):
        proc = self.run_check('[accelerator]\nsysfs_root = %(root)s\n',
                              '[placement]\n', '--only', 'placement')
        self.assertEqual(1, proc.returncode, proc.stdout + proc.stderr)
        self.assertTrue(proc.stdout.startswith('placement ('))
        self.assertNotIn('compute', proc.stdout)
