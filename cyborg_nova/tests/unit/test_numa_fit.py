"""NUMA-local placement of a guest around its devices:
``cyborg_nova.policy.numa_fit``."""

import ast
import inspect

import testscenarios
import testtools

from cyborg_nova import errors
from cyborg_nova.policy import numa_fit

GB = 1024


def cell(cpus, free=None, memory_mb=16 * GB, siblings=()):
    """A node; *cpus* and *free* are CPU ranges or sets."""
    cpus = frozenset(cpus)
    return numa_fit.NumaCell(cpus=cpus,
                             free_cpus=cpus if free is None else free,
                             free_memory_mb=memory_mb, siblings=siblings)


#: Two sockets of 8 CPUs, everything free.
TWO_NODES = {0: cell(range(0, 8)), 1: cell(range(8, 16))}
#: Node 1 has CPUs 8 and 9 pinned already and 2 GiB of memory left.
NODE_1_BUSY = {0: cell(range(0, 8)),
               1: cell(range(8, 16), free=range(10, 16), memory_mb=2 * GB)}
#: Four nodes of 8 CPUs.
FOUR_NODES = {n: cell(range(8 * n, 8 * n + 8)) for n in range(4)}
#: Two sockets and a memory-only (CXL) node 2.
WITH_CXL = {0: cell(range(0, 8)), 1: cell(range(8, 16)),
            2: cell((), memory_mb=64 * GB)}
#: Two nodes of 4 cores x 2 threads (siblings n and n+8); on node 0 CPU 1
#: is pinned, so core {1, 9} is partly used.
SMT = {0: cell({0, 1, 2, 3, 8, 9, 10, 11}, free={0, 2, 3, 8, 9, 10, 11},
               siblings=({0, 8}, {1, 9}, {2, 10}, {3, 11})),
       1: cell({4, 5, 6, 7, 12, 13, 14, 15},
               siblings=({4, 12}, {5, 13}, {6, 14}, {7, 15}))}

GPU0 = '0000:3b:00.0'
GPU1 = '0000:af:00.0'


def placed(nodes, cpuset, pinning=(), explanation=''):
    return numa_fit.NumaPlacement(
        nodes=tuple(nodes), cpuset=frozenset(cpuset), pinning=tuple(pinning),
        memory_nodes=tuple(nodes), aligned=True, explanation=explanation)


def free_anywhere(explanation):
    return numa_fit.NumaPlacement(explanation=explanation)


class PlaceTest(testscenarios.WithScenarios, testtools.TestCase):
    """Where the guest goes, and what a person is told."""

    dedicated = False
    policy = numa_fit.PREFERRED
    memory_mb = 4 * GB

    scenarios = [
        ('gpu on node 1, shared cpus -> cpuset is node 1',
         dict(cells=TWO_NODES, devices={GPU1: 1}, vcpus=4,
              expected=placed((1,), range(8, 16), explanation=(
                  'vCPUs on node 1 (CPUs 8-15), memory strict on node 1: '
                  'local to 0000:af:00.0')))),
        ('gpu on node 1, dedicated cpus -> pinned to free cpus of node 1',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=4, dedicated=True,
              memory_mb=2 * GB,
              expected=placed((1,), {10, 11, 12, 13}, (10, 11, 12, 13),
                              explanation=(
                  'vCPUs pinned to CPUs 10-13 of node 1, memory strict on '
                  'node 1: local to 0000:af:00.0')))),
        ('shared cpus ignore pinned cpus: the guest floats over the node',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=8,
              memory_mb=2 * GB,
              expected=placed((1,), range(8, 16), explanation=(
                  'vCPUs on node 1 (CPUs 8-15), memory strict on node 1: '
                  'local to 0000:af:00.0')))),
        ('devices given as a list of nodes are named generically',
         dict(cells=TWO_NODES, devices=[1, 1], vcpus=2,
              expected=placed((1,), range(8, 16), explanation=(
                  'vCPUs on node 1 (CPUs 8-15), memory strict on node 1: '
                  'local to its 2 devices')))),
        ('gpus on nodes 0 and 1 -> the union of both nodes',
         dict(cells=TWO_NODES, devices={GPU0: 0, GPU1: 1}, vcpus=4,
              expected=placed((0, 1), range(0, 16), explanation=(
                  'vCPUs on nodes 0,1 (CPUs 0-15), memory strict on nodes '
                  '0,1: local to 0000:3b:00.0 (node 0), 0000:af:00.0 '
                  '(node 1)')))),
        ('gpus on two nodes, dedicated -> the node with more gpus first',
         dict(cells=TWO_NODES, devices={GPU0: 0, GPU1: 1, 'x': 1},
              vcpus=10, dedicated=True,
              expected=placed((0, 1), {0, 1} | set(range(8, 16)),
                              tuple(range(8, 16)) + (0, 1), explanation=(
                  'vCPUs pinned to CPUs 0-1,8-15 of nodes 0,1, memory '
                  'strict on nodes 0,1: local to 0000:3b:00.0 (node 0), '
                  '0000:af:00.0 (node 1), x (node 1)')))),
        ('the guest exactly filling the node fits',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=6, dedicated=True,
              memory_mb=2 * GB, policy=numa_fit.REQUIRED,
              expected=placed((1,), range(10, 16), range(10, 16),
                              explanation=(
                  'vCPUs pinned to CPUs 10-15 of node 1, memory strict on '
                  'node 1: local to 0000:af:00.0')))),
        ('4-node host, gpu on node 3 -> node 3',
         dict(cells=FOUR_NODES, devices={GPU1: 3}, vcpus=4,
              expected=placed((3,), range(24, 32), explanation=(
                  'vCPUs on node 3 (CPUs 24-31), memory strict on node 3: '
                  'local to 0000:af:00.0')))),
        ('4-node host, gpus on nodes 1 and 3 -> nodes 1 and 3, not 2',
         dict(cells=FOUR_NODES, devices={GPU0: 1, GPU1: 3}, vcpus=4,
              expected=placed((1, 3), set(range(8, 16)) | set(range(24, 32)),
                              explanation=(
                  'vCPUs on nodes 1,3 (CPUs 8-15,24-31), memory strict on '
                  'nodes 1,3: local to 0000:3b:00.0 (node 1), 0000:af:00.0 '
                  '(node 3)')))),
        ('memory-only node beside a gpu: CPUs of the CPU node, memory on both',
         dict(cells=WITH_CXL, devices={GPU0: 0, 'cxl': 2}, vcpus=4,
              expected=placed((0, 2), range(0, 8), explanation=(
                  'vCPUs on nodes 0,2 (CPUs 0-7), memory strict on nodes '
                  '0,2: local to 0000:3b:00.0 (node 0), cxl (node 2)')))),
        ('SMT, dedicated -> whole free cores first',
         dict(cells=SMT, devices={GPU0: 0}, vcpus=4, dedicated=True,
              expected=placed((0,), {0, 8, 2, 10}, (0, 8, 2, 10),
                              explanation=(
                  'vCPUs pinned to CPUs 0,2,8,10 of node 0, memory strict '
                  'on node 0: local to 0000:3b:00.0')))),
        ('SMT, odd vCPU count -> the lone thread of a used core, not a '
         'new core',
         dict(cells=SMT, devices={GPU0: 0}, vcpus=3, dedicated=True,
              expected=placed((0,), {0, 8, 9}, (0, 8, 9), explanation=(
                  'vCPUs pinned to CPUs 0,8-9 of node 0, memory strict on '
                  'node 0: local to 0000:3b:00.0')))),
        ('SMT, every free thread of the node',
         dict(cells=SMT, devices={GPU0: 0}, vcpus=7, dedicated=True,
              expected=placed((0,), {0, 2, 3, 8, 9, 10, 11},
                              (0, 8, 2, 10, 3, 11, 9), explanation=(
                  'vCPUs pinned to CPUs 0,2-3,8-11 of node 0, memory '
                  'strict on node 0: local to 0000:3b:00.0')))),
        ('preferred policy, node full -> anywhere, and says why',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=8, dedicated=True,
              expected=free_anywhere(
                  'not aligned (NUMA policy preferred): node 1 (local to '
                  '0000:af:00.0) has 6 free dedicated CPUs and 2048 MiB '
                  'free memory; the guest needs 8 dedicated CPUs and 4096 '
                  'MiB; the guest may use any CPU and memory of the host'))),
        ('preferred policy, unknown device node -> no constraint',
         dict(cells=TWO_NODES, devices={GPU1: None}, vcpus=4,
              expected=free_anywhere(
                  'not aligned (NUMA policy preferred): the NUMA node of '
                  '0000:af:00.0 is unknown (the firmware does not say); the '
                  'guest may use any CPU and memory of the host'))),
        ('one unknown node among known ones -> cannot align',
         dict(cells=TWO_NODES, devices=[0, None], vcpus=4,
              expected=free_anywhere(
                  'not aligned (NUMA policy preferred): the NUMA node of a '
                  'device is unknown (the firmware does not say); the '
                  'guest may use any CPU and memory of the host'))),
        ('none policy -> no constraint, even with room',
         dict(cells=TWO_NODES, devices={GPU1: 1}, vcpus=4,
              policy=numa_fit.NONE,
              expected=free_anywhere('not aligned: NUMA policy none'))),
        ('required policy, no devices -> no constraint',
         dict(cells=TWO_NODES, devices={}, vcpus=4,
              policy=numa_fit.REQUIRED,
              expected=free_anywhere(
                  'not aligned: the guest has no devices to align with'))),
    ]

    def test_place(self):
        got = numa_fit.place(self.cells, self.devices, self.vcpus,
                             self.memory_mb, dedicated=self.dedicated,
                             policy=self.policy)
        self.assertEqual(self.expected, got)
        self.assertEqual(self.expected.explanation, got.explanation)

    def test_can_fit_agrees(self):
        """can_fit says yes exactly when place does not raise, for every
        policy, on cells and on bare counts."""
        counts = {n: numa_fit.CellCapacity(c.cpu_count, c.free_cpu_count,
                                           c.free_memory_mb)
                  for n, c in self.cells.items()}
        for policy in numa_fit.POLICIES:
            try:
                numa_fit.place(self.cells, self.devices, self.vcpus,
                               self.memory_mb, dedicated=self.dedicated,
                               policy=policy)
                fits = True
            except errors.NumaFitError:
                fits = False
            for cells in (self.cells, counts):
                self.assertEqual(fits, numa_fit.can_fit(
                    cells, self.devices, self.vcpus, self.memory_mb,
                    dedicated=self.dedicated, policy=policy), policy)

    def test_pinning_uses_free_cpus_once(self):
        got = numa_fit.place(self.cells, self.devices, self.vcpus,
                             self.memory_mb, dedicated=self.dedicated,
                             policy=self.policy)
        if not got.pinning:
            return
        self.assertEqual(self.vcpus, len(got.pinning))
        self.assertEqual(len(got.pinning), len(set(got.pinning)))
        free = set().union(*(self.cells[n].free_cpus for n in got.nodes))
        self.assertLessEqual(set(got.pinning), free)
        self.assertEqual({v: p for v, p in enumerate(got.pinning)},
                         got.pins)


class RequiredFailsTest(testscenarios.WithScenarios, testtools.TestCase):
    """Policy ``required`` refuses what it cannot align, and says why."""

    dedicated = False
    memory_mb = 4 * GB

    scenarios = [
        ('required policy, node full -> NumaFitError naming node 1',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=8, dedicated=True,
              memory_mb=1 * GB, nodes=(1,),
              message='node 1 (local to 0000:af:00.0) has 6 free dedicated '
                      'CPUs and 2048 MiB free memory; the guest needs 8 '
                      'dedicated CPUs and 1024 MiB')),
        ('required policy, not enough memory on the node',
         dict(cells=NODE_1_BUSY, devices={GPU1: 1}, vcpus=2,
              memory_mb=3 * GB, nodes=(1,),
              message='node 1 (local to 0000:af:00.0) has 8 CPUs for '
                      'shared-CPU guests and 2048 MiB free memory; the '
                      'guest needs 2 vCPUs and 3072 MiB')),
        ('shared guest with more vCPUs than the node has CPUs',
         dict(cells=TWO_NODES, devices={GPU1: 1}, vcpus=9, nodes=(1,),
              message='node 1 (local to 0000:af:00.0) has 8 CPUs for '
                      'shared-CPU guests and 16384 MiB free memory; the '
                      'guest needs 9 vCPUs and 4096 MiB')),
        ('two nodes together too small',
         dict(cells=FOUR_NODES, devices={GPU0: 0, GPU1: 2}, vcpus=17,
              dedicated=True, nodes=(0, 2),
              message='nodes 0,2 (local to 0000:3b:00.0 (node 0), '
                      '0000:af:00.0 (node 2)) have 16 free dedicated CPUs '
                      'and 32768 MiB free memory; the guest needs 17 '
                      'dedicated CPUs and 4096 MiB')),
        ('gpu on a memory-only node: no CPUs to run vCPUs on',
         dict(cells=WITH_CXL, devices={GPU1: 2}, vcpus=1, nodes=(2,),
              message='node 2 (local to 0000:af:00.0) has no CPUs '
                      '(memory-only) and 65536 MiB free memory; the guest '
                      'needs 1 vCPUs and 4096 MiB')),
        ('unknown device node',
         dict(cells=TWO_NODES, devices={GPU1: None}, vcpus=1, nodes=(),
              message='the NUMA node of 0000:af:00.0 is unknown (the '
                      'firmware does not say)')),
        ('device on a node the host does not have',
         dict(cells=TWO_NODES, devices={GPU1: 5}, vcpus=1, nodes=(),
              message='0000:af:00.0 is on NUMA node 5, which this host does '
                      'not have (nodes: 0, 1)')),
    ]

    def test_place_raises(self):
        exc = self.assertRaises(
            errors.NumaFitError, numa_fit.place, self.cells, self.devices,
            self.vcpus, self.memory_mb, dedicated=self.dedicated,
            policy=numa_fit.REQUIRED)
        self.assertEqual(
            'cannot place the guest NUMA-local to its devices (NUMA policy '
            'required): %s. Choose a host with room there, a smaller '
            'flavor, or accelerator:numa_policy=preferred' % self.message,
            str(exc))
        self.assertEqual(self.nodes, exc.nodes)
        self.assertIsInstance(exc, errors.CyborgNovaError)

    def test_can_fit_agrees(self):
        self.assertFalse(numa_fit.can_fit(
            self.cells, self.devices, self.vcpus, self.memory_mb,
            dedicated=self.dedicated, policy=numa_fit.REQUIRED))

    def test_can_fit_on_counts_agrees(self):
        counts = {n: numa_fit.CellCapacity(c.cpu_count, c.free_cpu_count,
                                           c.free_memory_mb)
                  for n, c in self.cells.items()}
        self.assertFalse(numa_fit.can_fit(
            counts, self.devices, self.vcpus, self.memory_mb,
            dedicated=self.dedicated, policy=numa_fit.REQUIRED))

    def test_preferred_falls_back_with_the_same_reason(self):
        got = numa_fit.place(self.cells, self.devices, self.vcpus,
                             self.memory_mb, dedicated=self.dedicated,
                             policy=numa_fit.PREFERRED)
        self.assertFalse(got.aligned)
        self.assertFalse(got.constrained)
        self.assertIn(self.message, got.explanation)


class CanFitTest(testtools.TestCase):

    def test_counts_are_enough(self):
        counts = {0: numa_fit.CellCapacity(8, 2, 4 * GB),
                  1: numa_fit.CellCapacity(8, 8, 1 * GB)}
        fit = numa_fit.can_fit
        self.assertTrue(fit(counts, [0], 2, 4 * GB, True, 'required'))
        self.assertFalse(fit(counts, [0], 3, 4 * GB, True, 'required'))
        self.assertTrue(fit(counts, [0], 8, 4 * GB, False, 'required'))
        self.assertTrue(fit(counts, [0, 1], 10, 5 * GB, True, 'required'))
        self.assertFalse(fit(counts, [0, 1], 10, 6 * GB, True, 'required'))
        self.assertFalse(fit(counts, {GPU0: 2}, 1, 0, False, 'required'))

    def test_only_required_can_fail(self):
        for policy in (numa_fit.PREFERRED, numa_fit.NONE):
            self.assertTrue(numa_fit.can_fit(TWO_NODES, [None], 99, 10 ** 9,
                                             True, policy))

    def test_unknown_policy_is_refused(self):
        for call in (numa_fit.can_fit, numa_fit.place):
            exc = self.assertRaises(errors.InvalidRequest, call, TWO_NODES,
                                    [0], 1, 0, False, 'strict')
            self.assertEqual("NUMA policy 'strict' is not one of required, "
                             "preferred, none", str(exc))

    def test_policies_match_the_flavor_vocabulary(self):
        from cyborg_nova.policy import request
        self.assertEqual(set(request.NUMA_POLICIES), set(numa_fit.POLICIES))


class ArgumentsTest(testtools.TestCase):

    def test_a_guest_needs_a_vcpu(self):
        self.assertRaises(ValueError, numa_fit.place, TWO_NODES, [0], 0, 0)
        self.assertRaises(ValueError, numa_fit.place, TWO_NODES, [0], 1, -1)

    def test_cell_stores_frozensets(self):
        c = numa_fit.NumaCell(cpus=[1, 2], free_cpus={2},
                              siblings=[[1, 2]])
        self.assertEqual(frozenset({1, 2}), c.cpus)
        self.assertEqual((frozenset({1, 2}),), c.siblings)
        self.assertEqual((2, 1), (c.cpu_count, c.free_cpu_count))
        hash(c)

    def test_format_cpus(self):
        self.assertEqual('', numa_fit.format_cpus(()))
        self.assertEqual('3', numa_fit.format_cpus([3]))
        self.assertEqual('0-3,8,10-11',
                         numa_fit.format_cpus({11, 0, 1, 2, 3, 8, 10}))


class PurityTest(testtools.TestCase):

    def test_imports_nothing_from_nova_oslo_or_libvirt(self):
        tree = ast.parse(inspect.getsource(numa_fit))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module)
        for name in names:
            self.assertFalse(name.split('.')[0] in
                             ('nova', 'oslo_config', 'libvirt', 'pynvml'),
                             name)
