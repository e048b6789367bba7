"""Reconciling guests, Placement, records and devices:
``cyborg_nova.policy.reconcile``."""

import ast
import dataclasses
import inspect

import testscenarios
import testtools

from cyborg_nova.policy import reconcile as rc

A = 'aaaaaaaa-0000-0000-0000-000000000001'     # a server on this host
B = 'bbbbbbbb-0000-0000-0000-000000000002'     # another one
X = 'ffffffff-0000-0000-0000-00000000000f'     # a domain Nova does not know
MIG = '99999999-0000-0000-0000-000000000009'   # a migration's consumer
P0 = 'p0'                                      # group provider, NUMA 0
P1 = 'p1'                                      # group provider, NUMA 1
G1, G2, G3 = '0000:10:00.0', '0000:20:00.0', '0000:30:00.0'

#: A host where server A holds G1 (of P0), as Placement and its record say.
BASE = rc.HostFacts(
    devices=frozenset({G1, G2, G3}),
    groups={P0: frozenset({G1, G2}), P1: frozenset({G3})},
    provider_names={P0: 'host1_PGPU_10de_2330_NUMA0',
                    P1: 'host1_PGPU_10de_2330_NUMA1'},
    guests={A: (G1,)},
    instances={A: rc.InstanceFacts(A, recorded=(G1,), name='train-1')},
    allocations={A: {P0: 1}})


P2 = 'p2'                                      # a VGPU group provider
V = '0000:40:00.0'                             # a vGPU parent in it

#: Servers A and B each hold a vGPU of parent V, A two of them.
VGPU = rc.HostFacts(
    devices=frozenset({V}), groups={P2: frozenset({V})},
    provider_names={P2: 'host1_VGPU_10de_1eb8_nvidia-223_NUMA1'},
    guests={A: (V, V), B: (V,)},
    instances={A: rc.InstanceFacts(A, recorded=(V, V)),
               B: rc.InstanceFacts(B, recorded=(V,))},
    allocations={A: {P2: 2}, B: {P2: 1}}, shared=frozenset({V}))


def facts(**changes):
    return dataclasses.replace(BASE, **changes)


def inst(uuid, recorded=(), settled=True):
    return rc.InstanceFacts(uuid, recorded=tuple(recorded), settled=settled)


class PlanTest(testscenarios.WithScenarios, testtools.TestCase):
    """Facts in; what is healed and what people are told out."""

    records = {}
    released = []

    scenarios = [
        ('guest, Placement and record agree: nothing to do',
         dict(facts=BASE, findings=[])),
        ('a guest without its record gets it back from the guest',
         dict(facts=facts(instances={A: inst(A)}),
              records={A: (G1,)},
              findings=[(rc.INFO, rc.RECORD_HEALED, A)])),
        ('a record naming another device is rewritten from the guest',
         dict(facts=facts(instances={A: inst(A, [G2])}),
              records={A: (G1,)},
              findings=[(rc.INFO, rc.RECORD_HEALED, A)])),
        ('a guest holding a device that vanished is an error, the '
         'allocation it leaves unbacked is not reported twice',
         dict(facts=facts(devices=frozenset({G2, G3}),
                          groups={P0: frozenset({G2}),
                                  P1: frozenset({G3})}),
              findings=[(rc.ERROR, rc.DEVICE_VANISHED, A)])),
        ('an allocation whose device is not in the guest but in the '
         'record: hard reboot puts it back',
         dict(facts=facts(guests={A: ()}),
              findings=[(rc.ERROR, rc.ALLOCATION_WITHOUT_DEVICE, A)],
              says='hard reboot')),
        ('an allocation backed by no device and no record: move the server',
         dict(facts=facts(guests={}, instances={A: inst(A)}),
              findings=[(rc.ERROR, rc.ALLOCATION_WITHOUT_DEVICE, A)],
              says='cold migrate or resize')),
        ('a guest holding more devices than Placement allocated it',
         dict(facts=facts(guests={A: (G1, G2)},
                          instances={A: inst(A, [G1, G2])}),
              findings=[(rc.ERROR, rc.DEVICE_WITHOUT_ALLOCATION, A)],
              says='heal_allocations')),
        ('a guest holding a device of a group it has no allocation from',
         dict(facts=facts(guests={A: (G1, G3)},
                          instances={A: inst(A, [G1, G3])}),
              findings=[(rc.ERROR, rc.DEVICE_WITHOUT_ALLOCATION, A)],
              says='host1_PGPU_10de_2330_NUMA1')),
        ('a domain Nova does not know holding a device',
         dict(facts=facts(guests={A: (G1,), X: (G2,)}),
              findings=[(rc.ERROR, rc.UNKNOWN_GUEST, X)],
              says='virsh dominfo')),
        ('a domain Nova does not know, without devices, is not ours',
         dict(facts=facts(guests={A: (G1,), X: ()}), findings=[])),
        ('two guests holding one device',
         dict(facts=facts(guests={A: (G1,), B: (G1,)},
                          instances={A: inst(A, [G1]), B: inst(B, [G1])},
                          allocations={A: {P0: 1}, B: {P0: 1}}),
              findings=[(rc.ERROR, rc.DEVICE_SHARED, None)])),
        ('a server with an operation in progress is left alone',
         dict(facts=facts(guests={}, instances={A: inst(A, [G1],
                                                        settled=False)}),
              findings=[(rc.INFO, rc.BUSY, A)])),
        ('a migration holding source devices is not ours to judge',
         dict(facts=facts(allocations={A: {P0: 1}, MIG: {P0: 1}}),
              findings=[])),
        ('a record without device in the guest nor allocation: a hard '
         'reboot would attach it again',
         dict(facts=facts(guests={A: ()}, allocations={}),
              findings=[(rc.WARNING, rc.RECORD_WITHOUT_GUEST_DEVICE, A)])),
        ('a stale claim of a server no spawn is running for is dropped',
         dict(facts=facts(pending={B: (G2,)}),
              released=[B],
              findings=[(rc.INFO, rc.PENDING_RELEASED, B)])),
        ('vGPU servers sharing a parent, as allocated: nothing to do',
         dict(facts=VGPU, findings=[])),
        ('a vGPU server\'s lost record is rewritten, once per mdev',
         dict(facts=dataclasses.replace(
             VGPU, instances={A: inst(A), B: inst(B, [V])}),
              records={A: (V, V)},
              findings=[(rc.INFO, rc.RECORD_HEALED, A)])),
        ('a vGPU server holding more mdevs than allocated',
         dict(facts=dataclasses.replace(VGPU, allocations={A: {P2: 1},
                                                           B: {P2: 1}}),
              findings=[(rc.ERROR, rc.DEVICE_WITHOUT_ALLOCATION, A)])),
        ('a whole device is still not to be shared',
         dict(facts=dataclasses.replace(VGPU, shared=frozenset()),
              findings=[(rc.ERROR, rc.DEVICE_SHARED, None)])),
        ('the claim of a server being built stays',
         dict(facts=facts(pending={B: (G2,)},
                          instances={A: inst(A, [G1]),
                                     B: inst(B, settled=False)},
                          allocations={A: {P0: 1}, B: {P0: 1}}),
              findings=[])),
    ]

    says = None

    def test_plan(self):
        result = rc.plan(self.facts)
        self.assertEqual(
            sorted(self.findings, key=str),
            sorted(((f.level, f.code, f.instance) for f in result.findings),
                   key=str))
        self.assertEqual(self.records, result.write_records)
        self.assertEqual(self.released, result.release_pending)
        problems = [f for f in self.findings
                    if f[0] in (rc.ERROR, rc.WARNING)]
        self.assertEqual(not (problems or self.records or self.released),
                         result.changes_nothing)
        if self.says:
            self.assertIn(self.says, ' '.join(f.message
                                              for f in result.findings))


class MessagesTest(testtools.TestCase):

    def test_an_error_names_server_devices_provider_and_what_to_do(self):
        [finding] = rc.plan(facts(guests={A: ()})).findings
        for part in (A, 'train-1', 'host1_PGPU_10de_2330_NUMA0', G1,
                     'openstack server reboot --hard'):
            self.assertIn(part, finding.message)

    def test_a_vanished_device_is_named_with_what_to_do(self):
        [finding] = rc.plan(facts(
            devices=frozenset({G2, G3}),
            groups={P0: frozenset({G2}), P1: frozenset({G3})})).findings
        self.assertEqual((G1,), finding.devices)
        self.assertIn(G1, finding.message)
        self.assertIn('cold migrate or resize', finding.message)


class HealthTransitionsTest(testscenarios.WithScenarios, testtools.TestCase):
    """Known health before, seen now: what is news (once per change)."""

    BAD = 'XID 79 (GPU has fallen off the bus)'
    ECC = '2 uncorrected ECC errors since the last reset'

    scenarios = [
        ('first look, all healthy: nothing to say',
         dict(previous={}, current={G1: '', G2: ''}, news=[],
              state={G1: '', G2: ''})),
        ('first look at an unhealthy device: reported',
         dict(previous={}, current={G1: BAD},
              news=[(G1, False, BAD)], state={G1: BAD})),
        ('a device turns unhealthy',
         dict(previous={G1: '', G2: ''}, current={G1: BAD, G2: ''},
              news=[(G1, False, BAD)], state={G1: BAD, G2: ''})),
        ('still unhealthy: no news, every period',
         dict(previous={G1: BAD}, current={G1: BAD}, news=[],
              state={G1: BAD})),
        ('still unhealthy for another reason: no news',
         dict(previous={G1: BAD}, current={G1: ECC}, news=[],
              state={G1: ECC})),
        ('a device recovers, with what it had',
         dict(previous={G1: BAD}, current={G1: ''},
              news=[(G1, True, BAD)], state={G1: ''})),
        ('a healthy device vanishes: unhealthy',
         dict(previous={G1: '', G2: ''}, current={G2: ''},
              news=[(G1, False, rc.VANISHED_REASON)],
              state={G1: rc.VANISHED_REASON, G2: ''})),
        ('a vanished device stays gone: no news',
         dict(previous={G1: rc.VANISHED_REASON}, current={},
              news=[], state={G1: rc.VANISHED_REASON})),
        ('a vanished device comes back healthy: recovered',
         dict(previous={G1: rc.VANISHED_REASON}, current={G1: ''},
              news=[(G1, True, rc.VANISHED_REASON)], state={G1: ''})),
        ('an unhealthy device vanishing is no news',
         dict(previous={G1: BAD}, current={}, news=[], state={G1: BAD})),
    ]

    def test_transitions(self):
        news, state = rc.health_transitions(self.previous, self.current)
        self.assertEqual(self.news,
                         [(t.address, t.healthy, t.reason) for t in news])
        self.assertEqual(self.state, state)


class PurityTest(testtools.TestCase):

    def test_imports_nothing_from_the_host_or_nova(self):
        tree = ast.parse(inspect.getsource(rc))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or '').split('.')[0])
        self.assertEqual({'dataclasses'}, imported)
