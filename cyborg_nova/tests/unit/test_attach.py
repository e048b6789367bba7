"""Attach and detach on a running server: the pure decisions of
``cyborg_nova.attach`` (which devices, what an interrupted operation left
to heal), its Placement conversation (consumer generations, one retry) and
the command line.  The whole operation runs against real Nova in
``cyborg_nova/tests/functional/test_attach.py``."""

import io
import os
import subprocess
import sys

import fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from oslo_config import cfg
import testscenarios
import testtools

import cyborg_nova
from cyborg_nova import attach
from cyborg_nova.cmd import main as cmd_main
from cyborg_nova import conf as cn_conf
from cyborg_nova import discovery
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.policy import numa_fit
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.virt_hooks import host_devices

GB = 1024
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    cyborg_nova.__file__)))


def cells(cpus_per_node=4, nodes=2, memory_mb=16 * GB):
    return {n: numa_fit.NumaCell(
        cpus=range(n * cpus_per_node, (n + 1) * cpus_per_node),
        free_memory_mb=memory_mb) for n in range(nodes)}


def group(name, node, free, rc='PGPU', traits=()):
    return attach.Candidate(
        provider='rp-%s' % name, name=name, resource_class=rc,
        numa_node=node, free=tuple(free),
        traits=frozenset(traits) | {'CUSTOM_ACCEL_NUMA_NODE_%s' % node})


NODE0 = group('NUMA0', 0, ['0000:10:00.0', '0000:11:00.0'])
NODE1 = group('NUMA1', 1, ['0000:20:00.0'], traits={'CUSTOM_NVLINK'})
FPGA1 = group('FPGA1', 1, ['0000:30:00.0'], rc='FPGA')
SHARED = attach.GuestShape(vcpus=2, memory_mb=GB, cells=cells())
#: A guest of 6 vCPUs: no 4-CPU node can hold it alone.
WIDE = attach.GuestShape(vcpus=6, memory_mb=GB, cells=cells())
#: A guest Nova pinned on node 0 at boot.
PINNED0 = attach.GuestShape(vcpus=2, memory_mb=GB, nodes=frozenset({0}))


class ChooseTest(testscenarios.WithScenarios, testtools.TestCase):
    """Which group, and which devices of it, an attach takes."""

    scenarios = [
        ('a shared-CPU guest goes with the first group that fits',
         dict(kwargs={}, guest=SHARED, expected=('NUMA1', ('0000:20:00.0',)),
              aligned=True)),
        ('between equal groups the name decides',
         dict(kwargs={'candidates': [group('B', 1, ['0000:40:00.0']),
                                     group('A', 0, ['0000:50:00.0'])]},
              guest=SHARED, expected=('A', ('0000:50:00.0',)),
              aligned=True)),
        ('a trait narrows the groups',
         dict(kwargs={'traits': {'CUSTOM_ACCEL_NUMA_NODE_0'}}, guest=SHARED,
              expected=('NUMA0', ('0000:10:00.0',)), aligned=True)),
        ('devices taken by an earlier class of the request are skipped',
         dict(kwargs={'taken': {'0000:20:00.0'}}, guest=SHARED,
              expected=('NUMA0', ('0000:10:00.0',)), aligned=True)),
        ('two devices come from one group',
         dict(kwargs={'count': 2}, guest=SHARED,
              expected=('NUMA0', ('0000:10:00.0', '0000:11:00.0')),
              aligned=True)),
        ('another resource class is another group',
         dict(kwargs={'resource_class': 'FPGA'}, guest=SHARED,
              expected=('FPGA1', ('0000:30:00.0',)), aligned=True)),
        ('preferred: a guest too wide for any node still gets a device',
         dict(kwargs={}, guest=WIDE, expected=('NUMA1', ('0000:20:00.0',)),
              aligned=False)),
        ('a guest with a device on node 0 fits nodes 0 and 1 together',
         dict(kwargs={'policy': 'required'},
              guest=attach.GuestShape(vcpus=6, memory_mb=GB, cells=cells(),
                                      devices={'0000:11:00.0': 0}),
              expected=('NUMA1', ('0000:20:00.0',)), aligned=True)),
        ('a pinned guest gets a device on its node first',
         dict(kwargs={}, guest=PINNED0,
              expected=('NUMA0', ('0000:10:00.0',)), aligned=True)),
        ('preferred: a pinned guest takes a remote device when needed',
         dict(kwargs={'traits': {'CUSTOM_NVLINK'}}, guest=PINNED0,
              expected=('NUMA1', ('0000:20:00.0',)), aligned=False)),
        ('NUMA policy none takes any group',
         dict(kwargs={'policy': 'none'}, guest=WIDE,
              expected=('NUMA1', ('0000:20:00.0',)), aligned=False)),
    ]

    def test_choose(self):
        kwargs = dict(candidates=[NODE0, NODE1, FPGA1],
                      resource_class='PGPU', count=1)
        kwargs.update(self.kwargs)
        choice = attach.choose(guest=self.guest, **kwargs)
        self.assertEqual(self.expected,
                         (choice.candidate.name, choice.addresses))
        self.assertEqual(self.aligned, choice.aligned, choice.explanation)


class ChooseRefusesTest(testscenarios.WithScenarios, testtools.TestCase):
    """When nothing fits, the error says why for each group."""

    scenarios = [
        ('no group has the trait',
         dict(kwargs={'traits': {'CUSTOM_MIG'}}, guest=SHARED,
              says=['NUMA0 lacks trait(s) CUSTOM_MIG',
                    'NUMA1 lacks trait(s) CUSTOM_MIG',
                    'with trait(s) CUSTOM_MIG'])),
        ('no group has enough free devices',
         dict(kwargs={'count': 3}, guest=SHARED,
              says=['give 3 PGPU', 'NUMA0 has 2 free device(s)',
                    'NUMA1 has 1 free device(s)'])),
        ('required: no node can hold the guest',
         dict(kwargs={'policy': 'required'}, guest=WIDE,
              says=['NUMA policy required', 'node 0', 'node 1',
                    'the guest needs 6 vCPUs'])),
        ('required: a pinned guest does not move to the device',
         dict(kwargs={'policy': 'required', 'traits': {'CUSTOM_NVLINK'}},
              guest=PINNED0,
              says=['0000:20:00.0 is on NUMA node 1 but the guest\'s vCPUs '
                    'and memory are on node(s) 0 (placed by Nova at boot)',
                    '--numa-policy preferred'])),
        ('the host has none of the class',
         dict(kwargs={'resource_class': 'CUSTOM_ACCEL_NPU'}, guest=SHARED,
              says=['the host has no CUSTOM_ACCEL_NPU'])),
    ]

    def test_refused(self):
        kwargs = dict(candidates=[NODE0, NODE1, FPGA1],
                      resource_class='PGPU', count=1)
        kwargs.update(self.kwargs)
        exc = self.assertRaises(errors.NoFreeDevice, attach.choose,
                                guest=self.guest, **kwargs)
        for text in self.says:
            self.assertIn(text, str(exc))

    def test_bad_policy(self):
        self.assertRaises(errors.InvalidRequest, attach.choose, [NODE0],
                          'PGPU', 1, policy='strict')


A, B, C = '0000:10:00.0', '0000:20:00.0', '0000:30:00.0'
VF = '0000:81:00.2'           # an SR-IOV port's VF: not ours
V = '0000:40:00.0'            # a vGPU parent: once per mdev
PROVIDERS = {A: 'rp0', B: 'rp1', C: 'rp1', V: 'rp2'}


class PlanReconcileTest(testscenarios.WithScenarios, testtools.TestCase):
    """What an interrupted attach or detach leaves, and what heals it."""

    scenarios = [
        ('all agree',
         dict(recorded=[A], guest=[A, VF], allocated={'rp0': 1},
              detaching=[], expect=dict(record=(A,)), needed=False)),
        ('attach stopped after the claim: the allocation goes',
         dict(recorded=[], guest=[], allocated={'rp0': 1}, detaching=[],
              expect=dict(release={'rp0': 1}), needed=True)),
        ('attach stopped after libvirt, before the record: adopted',
         dict(recorded=[A], guest=[A, B], allocated={'rp0': 1, 'rp1': 1},
              detaching=[], expect=dict(record=(A, B), adopted=(B,)),
              needed=True)),
        ('detach stopped after libvirt: reset, forgotten, released',
         dict(recorded=[A, B], guest=[A], allocated={'rp0': 1, 'rp1': 1},
              detaching=[B],
              expect=dict(record=(A,), forgotten=(B,), reset=(B,),
                          release={'rp1': 1}, clear_marker=True),
              needed=True)),
        ('detach stopped after the reset and the record: reset again',
         dict(recorded=[A], guest=[A], allocated={'rp0': 1, 'rp1': 1},
              detaching=[B],
              expect=dict(record=(A,), reset=(B,), release={'rp1': 1},
                          clear_marker=True),
              needed=True)),
        ('detach stopped before libvirt: only the mark goes',
         dict(recorded=[B], guest=[B], allocated={'rp1': 1}, detaching=[B],
              expect=dict(record=(B,), clear_marker=True), needed=True)),
        ('recorded, not in the guest, not being detached: left alone',
         dict(recorded=[A, B], guest=[A], allocated={'rp0': 1, 'rp1': 1},
              detaching=[], expect=dict(record=(A, B), stray=(B,)),
              needed=False)),
        ('a recorded device gone from the host: nothing released',
         dict(recorded=['0000:99:00.0'], guest=['0000:99:00.0'],
              allocated={'rp0': 1}, detaching=[],
              expect=dict(record=('0000:99:00.0',),
                          vanished=('0000:99:00.0',)),
              needed=False)),
        ('held beyond the allocation: reported, not changed',
         dict(recorded=[B, C], guest=[B, C], allocated={'rp1': 1},
              detaching=[], expect=dict(record=(B, C), short={'rp1': 1}),
              needed=False)),
        ('two vGPUs on one parent, all agree',
         dict(recorded=[V, V], guest=[V, V], allocated={'rp2': 2},
              detaching=[], expect=dict(record=(V, V)), needed=False)),
        ('vGPU attach stopped after libvirt: the second mdev adopted',
         dict(recorded=[V], guest=[V, V], allocated={'rp2': 2},
              detaching=[], expect=dict(record=(V, V), adopted=(V,)),
              needed=True)),
        ('vGPU detach stopped after libvirt: one forgotten and released',
         dict(recorded=[V, V], guest=[V], allocated={'rp2': 2},
              detaching=[V],
              expect=dict(record=(V,), forgotten=(V,), reset=(V,),
                          release={'rp2': 1}, clear_marker=True),
              needed=True)),
        ('vGPU detach stopped before libvirt: both kept, the mark goes',
         dict(recorded=[V, V], guest=[V, V], allocated={'rp2': 2},
              detaching=[V], expect=dict(record=(V, V), clear_marker=True),
              needed=True)),
        ('one of two vGPUs not in the guest, not being detached: stray once',
         dict(recorded=[V, V], guest=[V], allocated={'rp2': 2},
              detaching=[], expect=dict(record=(V, V), stray=(V,)),
              needed=False)),
    ]

    def test_plan(self):
        plan = attach.plan_reconcile(self.recorded, self.guest, PROVIDERS,
                                     self.allocated, self.detaching)
        expected = attach.ReconcilePlan(**self.expect)
        self.assertEqual(expected, plan)
        self.assertEqual(self.needed, plan.needed)


class ResourcesTest(testtools.TestCase):

    def test_parse(self):
        self.assertEqual({'PGPU': 1}, attach.parse_resources('PGPU=1'))
        self.assertEqual({'PGPU': 2, 'CUSTOM_ACCEL_NPU': 1},
                         attach.parse_resources(
                             ' PGPU=1, CUSTOM_ACCEL_NPU=1,PGPU=1 '))
        self.assertEqual({'FPGA': 1},
                         attach.parse_resources('PGPU=0,FPGA=1'))

    def test_refused(self):
        for text, says in (
                ('PGPU', "'PGPU' is not RESOURCE_CLASS=COUNT"),
                ('PGPU=one', 'PGPU=one is not valid: the count must be'),
                ('PGPU=-1', 'PGPU=-1 is not valid'),
                ('VCPU=1', 'VCPU is not an accelerator resource class'),
                ('PGPU=0', 'no accelerator asked'),
                ('', 'no accelerator asked')):
            exc = self.assertRaises(errors.InvalidRequest,
                                    attach.parse_resources, text)
            self.assertIn(says, str(exc))

    def test_normalize_address(self):
        self.assertEqual('0000:10:00.0', attach.normalize_address('10:00.0'))
        self.assertEqual('0000:af:00.1',
                         attach.normalize_address(' 0000:AF:00.1 '))


class ApplyDeltasTest(testtools.TestCase):

    CURRENT = {'root': {'resources': {'VCPU': 2, 'MEMORY_MB': 1024},
                        'generation': 7},
               'rp0': {'resources': {'PGPU': 1}, 'generation': 3}}

    def test_add_to_a_new_and_an_existing_provider(self):
        new = attach.apply_deltas(self.CURRENT, {('rp0', 'PGPU'): 1,
                                                 ('rp1', 'PGPU'): 1})
        self.assertEqual(
            {'root': {'resources': {'VCPU': 2, 'MEMORY_MB': 1024}},
             'rp0': {'resources': {'PGPU': 2}},
             'rp1': {'resources': {'PGPU': 1}}}, new)

    def test_release_drops_empty_providers_and_stops_at_zero(self):
        new = attach.apply_deltas(self.CURRENT, {('rp0', 'PGPU'): -2,
                                                 ('rp9', 'PGPU'): -1})
        self.assertEqual(
            {'root': {'resources': {'VCPU': 2, 'MEMORY_MB': 1024}}}, new)


class FakeResponse(object):

    def __init__(self, status, body=None):
        self.status_code = status
        self._body = body or {}
        self.text = str(body)

    def __bool__(self):
        return self.status_code < 400

    def json(self):
        return self._body


class FakeReportClient(object):
    """Placement's allocations endpoint for one consumer; *answers* are
    the status codes of successive PUTs (204 once they run out)."""

    def __init__(self, allocations, answers=()):
        self.allocations = allocations
        self.generation = 1
        self.answers = list(answers)
        self.puts = []

    def get(self, url, version=None, global_request_id=None):
        return FakeResponse(200, {
            'allocations': {rp: {'resources': dict(r), 'generation': 1}
                            for rp, r in self.allocations.items()},
            'consumer_generation': self.generation,
            'project_id': 'p', 'user_id': 'u'})

    def put(self, url, data, version=None, global_request_id=None):
        self.puts.append((version, data))
        status = self.answers.pop(0) if self.answers else 204
        if status == 409:
            self.generation += 1       # somebody else changed it
            return FakeResponse(409, {'errors': [{
                'code': 'placement.concurrent_update',
                'detail': 'consumer generation conflict - expected 1 but '
                          'got 2'}]})
        if status != 204:
            return FakeResponse(status, {'errors': [{
                'code': 'placement.undefined_code',
                'detail': 'Unable to allocate inventory'}]})
        self.allocations = {rp: a['resources']
                            for rp, a in data['allocations'].items()}
        self.generation += 1
        return FakeResponse(204)


class Context(object):
    global_id = 'req-1'


class ServerAllocationsTest(testtools.TestCase):

    def allocations(self, client):
        return attach.ServerAllocations(client, Context(), 'server-1')

    def test_add_with_the_consumer_generation(self):
        client = FakeReportClient({'root': {'VCPU': 2}})
        applied = self.allocations(client).change({('rp0', 'PGPU'): 1},
                                                  'add')
        self.assertEqual({('rp0', 'PGPU'): 1}, applied)
        [(version, data)] = client.puts
        self.assertEqual('1.28', version)
        self.assertEqual(1, data['consumer_generation'])
        self.assertEqual(('p', 'u'), (data['project_id'], data['user_id']))
        self.assertEqual({'root': {'VCPU': 2}, 'rp0': {'PGPU': 1}},
                         client.allocations)

    def test_a_conflict_is_retried_once_with_a_fresh_read(self):
        client = FakeReportClient({'root': {'VCPU': 2}}, answers=[409])
        self.allocations(client).change({('rp0', 'PGPU'): 1}, 'add')
        self.assertEqual([1, 2], [d['consumer_generation']
                                  for _, d in client.puts])
        self.assertEqual({'PGPU': 1}, client.allocations['rp0'])

    def test_a_second_conflict_fails_and_changes_nothing(self):
        client = FakeReportClient({'root': {'VCPU': 2}}, answers=[409, 409])
        exc = self.assertRaises(attach.AllocationConflict,
                                self.allocations(client).change,
                                {('rp0', 'PGPU'): 1}, 'add 1 PGPU')
        self.assertIn('Placement refused twice to add 1 PGPU for server '
                      'server-1: consumer generation conflict', str(exc))
        self.assertEqual({'root': {'VCPU': 2}}, client.allocations)

    def test_other_refusals_are_not_retried(self):
        client = FakeReportClient({'root': {'VCPU': 2}}, answers=[400])
        exc = self.assertRaises(attach.AttachError,
                                self.allocations(client).change,
                                {('rp0', 'PGPU'): 1}, 'add')
        self.assertIn('HTTP 400 Unable to allocate inventory', str(exc))
        self.assertEqual(1, len(client.puts))

    def test_a_server_without_allocations_is_refused(self):
        client = FakeReportClient({})
        exc = self.assertRaises(attach.AttachError,
                                self.allocations(client).change,
                                {('rp0', 'PGPU'): 1}, 'add')
        self.assertIn('heal_allocations --instance server-1', str(exc))

    def test_nothing_to_release_puts_nothing(self):
        client = FakeReportClient({'root': {'VCPU': 2}})
        self.assertEqual({}, self.allocations(client).change(
            {('rp0', 'PGPU'): -1}, 'release'))
        self.assertEqual([], client.puts)

    def test_accelerators_on_providers(self):
        client = FakeReportClient({'root': {'VCPU': 2},
                                   'rp0': {'PGPU': 2}, 'rp9': {'FPGA': 1}})
        self.assertEqual({'rp0': 2}, self.allocations(client).accelerators_on(
            {'rp0', 'root'}))


class UndoTest(testtools.TestCase):

    def test_steps_run_in_reverse_and_failures_are_reported(self):
        done = []
        undo = attach._Undo()
        undo.push('first', done.append, 1)
        undo.push('second', lambda: 1 / 0)
        undo.push('third', done.append, 3)
        leftovers = undo.run()
        self.assertEqual([3, 1], done)
        self.assertEqual(1, len(leftovers))
        self.assertIn('second: division by zero', leftovers[0])
        self.assertEqual([], undo.run())


class FakeDomain(object):

    def __init__(self, fail=False):
        self.pins = []
        self.numa = []
        self.fail = fail

    def pinVcpuFlags(self, vcpu, cpumap, flags):
        if self.fail:
            raise fakelibvirt.make_libvirtError(
                fakelibvirt.libvirtError, 'cgroup cpuset not mounted',
                error_code=1)
        self.pins.append((vcpu, cpumap, flags))

    def setNumaParameters(self, params, flags):
        self.numa.append((params, flags))


class FakeGuest(object):
    uuid = 'server-1'

    def __init__(self, domain, active=True):
        self._domain = domain
        self.active = active

    def is_active(self):
        return self.active


class ReplaceLiveTest(testtools.TestCase):

    ON_NODE1 = (frozenset(range(4, 8)), (1,))

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.guest.libvirt', fakelibvirt))

    def test_vcpus_pinned_live_and_persistent_memory_bound(self):
        domain = FakeDomain()
        self.assertTrue(attach.replace_live(FakeGuest(domain), *self.ON_NODE1,
                                            vcpus=2))
        live_config = (fakelibvirt.VIR_DOMAIN_AFFECT_LIVE |
                       fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG)
        cpumap = (False,) * 4 + (True,) * 4
        self.assertEqual([(0, cpumap, live_config), (1, cpumap, live_config)],
                         domain.pins)
        self.assertEqual([({'numa_nodeset': '1'},
                           fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG)], domain.numa)

    def test_a_stopped_guest_is_changed_in_its_config_only(self):
        domain = FakeDomain()
        attach.replace_live(FakeGuest(domain, active=False), *self.ON_NODE1,
                            vcpus=1)
        self.assertEqual([fakelibvirt.VIR_DOMAIN_AFFECT_CONFIG],
                         [flags for _, _, flags in domain.pins])

    def test_left_to_the_next_rebuild_when_libvirt_cannot(self):
        self.assertFalse(attach.replace_live(FakeGuest(object()),
                                             *self.ON_NODE1, vcpus=2))
        self.assertFalse(attach.replace_live(FakeGuest(FakeDomain(True)),
                                             *self.ON_NODE1, vcpus=2))


class HostDevicesForAttachTest(testtools.TestCase):
    """What ``HostDevices`` offers an attach: a hold that keeps spawns in
    this process off the picked devices, and a fresh look at them."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).join('sys')
        os.makedirs(self.root)
        hosts.gpu_host(self.root, [0, 1])
        conf = cfg.ConfigOpts()
        cn_conf.register_opts(conf)
        conf([])
        context = discovery.make_context(conf, sysfs_root=self.root)
        self.host = host_devices.HostDevices(
            conf, drivers={'pci': pci.PciDriver(context)},
            sysfs_root=self.root)

    def test_an_attach_hold_is_held_apart_from_the_spawn_claim(self):
        self.host.hold_for_attach('vm-1', [A])
        self.assertEqual({A, B}, self.host.held({'vm-2': [B]}))
        self.assertEqual([], self.host.pending('vm-1'))
        self.host.settle('vm-1')          # a spawn's end leaves it alone
        self.assertEqual({A}, self.host.held({}))
        self.host.drop_attach_hold('vm-1')
        self.assertEqual(set(), self.host.held({}))

    def test_recheck_sees_the_devices_now(self):
        self.assertEqual([B, A], [d.address for d in
                                  self.host.recheck([B, A])])
        link = os.path.join(self.root, 'bus', 'pci', 'devices', B)
        os.unlink(link)
        exc = self.assertRaises(errors.DeviceNotFound, self.host.recheck,
                                [A, B])
        self.assertIn('accelerator %s vanished from the host after it was '
                      'picked' % B, str(exc))


class CommandLineTest(testtools.TestCase):

    def parse(self, argv):
        return cmd_main.build_parser().parse_args(argv)

    def test_attach_arguments(self):
        args = self.parse(['attach', 'vm1', '--resources', 'PGPU=1',
                           '--trait', 'CUSTOM_A', '--trait', 'CUSTOM_B',
                           '--numa-policy', 'required',
                           '--config-file', '/etc/nova/nova.conf'])
        self.assertEqual(('vm1', 'PGPU=1', ['CUSTOM_A', 'CUSTOM_B'],
                          'required', ['/etc/nova/nova.conf']),
                         (args.server, args.resources, args.traits,
                          args.numa_policy, args.config_files))

    def test_detach_device_is_optional(self):
        self.assertIsNone(self.parse(['detach', 'vm1']).device)
        self.assertEqual('10:00.0',
                         self.parse(['detach', 'vm1', '10:00.0']).device)

    def test_usage_errors_exit_2(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        self.assertEqual(2, cmd_main.main(['attach', 'vm1']))
        self.assertEqual(2, cmd_main.main(['attach', 'vm1', '--numa-policy',
                                           'strict', '--resources',
                                           'PGPU=1']))

    def test_bad_resources_exit_2_before_touching_nova(self):
        proc = self.run_cli(['attach', 'vm1', '--resources', 'VCPU=1'])
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn('cyborg-nova attach: VCPU is not an accelerator '
                      'resource class', proc.stderr)

    def test_a_host_not_on_our_driver_is_refused(self):
        conf = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n')
        proc = self.run_cli(['detach', 'vm1', '--config-file', conf])
        self.assertEqual(2, proc.returncode, proc.stderr)
        self.assertIn("cyborg-nova detach: compute_driver is "
                      "'libvirt.LibvirtDriver' in nova.conf; this command "
                      "works on hosts whose compute_driver is "
                      "cyborg_nova.AcceleratedLibvirtDriver", proc.stderr)

    def run_cli(self, argv):
        return subprocess.run(
            [sys.executable, '-m', 'cyborg_nova.cmd.main'] + argv,
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
