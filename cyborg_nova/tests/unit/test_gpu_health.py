"""Deciding whether a GPU is healthy: ``cyborg_nova.policy.gpu_health``."""

import ast
import inspect

import testscenarios
import testtools

from cyborg_nova.conf import accelerator as accel_conf
from cyborg_nova.policy import gpu_health as gh

T = '2026-11-26T10:00:00Z'
#: What NVML read on the captured H100 (hosts/h100-1gpu-vm/nvml.json).
CAPTURED = gh.Readings(ecc_uncorrected_volatile=0,
                       remapped_rows_pending=False,
                       remapped_rows_failure=False,
                       retired_pages_pending=None)
AGAIN = ('; it stays out of use until it is reset (cyborg-nova resets it '
         'when its guest releases it) or the host reboots')


def xid(number, at=T):
    return gh.Event(gh.XID, number, at)


class DecideTest(testscenarios.WithScenarios, testtools.TestCase):
    """Readings and held events in, Health out."""

    events = ()
    ignored = gh.DEFAULT_IGNORED_XIDS
    max_failures = 0

    scenarios = [
        ('the captured H100 is healthy',
         dict(readings=CAPTURED, reason='')),
        ('nothing read is healthy (no evidence against it)',
         dict(readings=gh.Readings(), reason='')),
        ('a lost GPU is unhealthy whatever else it says',
         dict(readings=gh.Readings(lost='nvmlDeviceGetMemoryInfo: GPU is '
                                        'lost', ecc_uncorrected_volatile=3),
              events=(xid(79),),
              reason='GPU is lost (nvmlDeviceGetMemoryInfo: GPU is lost): it '
                     'fell off the bus or hung; reset it or reboot the '
                     'host')),
        ('one uncorrected ECC error',
         dict(readings=CAPTURED._replace(ecc_uncorrected_volatile=1),
              reason='1 uncorrected ECC error since the last reset' + AGAIN)),
        ('several uncorrected ECC errors',
         dict(readings=CAPTURED._replace(ecc_uncorrected_volatile=7),
              reason='7 uncorrected ECC errors since the last reset' +
                     AGAIN)),
        ('a pending row remapping',
         dict(readings=CAPTURED._replace(remapped_rows_pending=True),
              reason='row remapping pending: the GPU needs a reset to remap '
                     'the damaged memory rows' + AGAIN)),
        ('a failed row remapping, none allowed',
         dict(readings=CAPTURED._replace(remapped_rows_failure=True),
              reason='row remapping failed: the memory cannot be repaired '
                     'any more; the GPU needs service' + AGAIN)),
        ('a failed row remapping, one allowed by the operator',
         dict(readings=CAPTURED._replace(remapped_rows_failure=True),
              max_failures=1, reason='')),
        ('retired pages pending (pre-Ampere GPUs)',
         dict(readings=CAPTURED._replace(retired_pages_pending=True),
              reason='retired memory pages pending: the GPU needs a reset '
                     'to retire them' + AGAIN)),
        ('a critical XID names its number, meaning and time',
         dict(readings=CAPTURED, events=(xid(79),),
              reason='XID 79 (GPU has fallen off the bus) at ' + T + AGAIN)),
        ('an XID without a known meaning is named by number',
         dict(readings=CAPTURED, events=(xid(999),),
              reason='XID 999 at ' + T + AGAIN)),
        ('an application XID is ignored by default',
         dict(readings=CAPTURED, events=(xid(13), xid(31), xid(109)),
              reason='')),
        ('an application XID counts when the operator ignores none',
         dict(readings=CAPTURED, events=(xid(13),), ignored=(),
              reason='XID 13 (graphics engine exception) at ' + T + AGAIN)),
        ('the operator may ignore more XIDs',
         dict(readings=CAPTURED, events=(xid(74),), ignored=(74,),
              reason='')),
        ('a double-bit ECC event',
         dict(readings=CAPTURED,
              events=(gh.Event(gh.DOUBLE_BIT_ECC, 0, T),),
              reason='double-bit ECC error event at ' + T + AGAIN)),
        ('a GPU-unavailable event',
         dict(readings=CAPTURED,
              events=(gh.Event(gh.GPU_UNAVAILABLE, 0, T),),
              reason='GPU unavailable event at ' + T + AGAIN)),
        ('every reason is given, readings first',
         dict(readings=CAPTURED._replace(ecc_uncorrected_volatile=2,
                                         remapped_rows_pending=True),
              events=(xid(48), xid(13), xid(95, at='later')),
              reason='2 uncorrected ECC errors since the last reset; row '
                     'remapping pending: the GPU needs a reset to remap the '
                     'damaged memory rows; XID 48 (double-bit ECC error) at '
                     + T + '; XID 95 (uncontained ECC error) at later' +
                     AGAIN)),
    ]

    def test_decide(self):
        health = gh.decide(self.readings, self.events, self.ignored,
                           self.max_failures)
        self.assertEqual(self.reason, health.reason)
        self.assertEqual(not self.reason, health.healthy)


class LatchTest(testscenarios.WithScenarios, testtools.TestCase):
    """Which events are held until the GPU is reset."""

    scenarios = [
        ('nothing held, nothing new', dict(held=(), new=(), kept=())),
        ('a critical XID is held',
         dict(held=(), new=(xid(79),), kept=(xid(79),))),
        ('an application XID is not',
         dict(held=(), new=(xid(43),), kept=())),
        ('held events stay, new ones follow',
         dict(held=(xid(74),), new=(xid(79),), kept=(xid(74), xid(79)))),
        ('a storm of one XID is held once, the first time',
         dict(held=(xid(92, 'first'),),
              new=(xid(92, 'second'), xid(92, 'third')),
              kept=(xid(92, 'first'),))),
        ('ECC events are held',
         dict(held=(), new=(gh.Event(gh.DOUBLE_BIT_ECC, 0, T),),
              kept=(gh.Event(gh.DOUBLE_BIT_ECC, 0, T),))),
    ]

    def test_latch(self):
        self.assertEqual(self.kept, gh.latch(self.held, self.new))


class XidTableTest(testtools.TestCase):

    def test_well_known_xids_are_described(self):
        for number in (48, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120):
            self.assertIn(number, gh.XID_MEANINGS)
            self.assertEqual('XID %d (%s)' % (number,
                                              gh.XID_MEANINGS[number]),
                             gh.describe_xid(number))

    def test_ignored_xids_are_application_errors(self):
        self.assertEqual((13, 31, 43, 45, 68, 109), gh.DEFAULT_IGNORED_XIDS)
        for number in gh.DEFAULT_IGNORED_XIDS:
            self.assertFalse(gh.is_critical(xid(number)))

    def test_config_default_is_the_policy_default(self):
        opt = next(o for o in accel_conf.ALL_OPTS
                   if o.name == 'nvidia_ignored_xids')
        self.assertEqual(list(gh.DEFAULT_IGNORED_XIDS), opt.default)


class PurityTest(testtools.TestCase):

    def test_imports_no_hardware_or_service_module(self):
        tree = ast.parse(inspect.getsource(gh))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
        for name in imported:
            self.assertFalse(
                name.split('.')[0] in ('pynvml', 'nova', 'libvirt',
                                       'oslo_config'),
                '%s imports %s' % (gh.__name__, name))
