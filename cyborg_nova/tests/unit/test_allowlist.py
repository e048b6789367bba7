"""Which devices the operator allows: ``cyborg_nova.policy.allowlist``."""

import testscenarios
import testtools

from cyborg_nova.policy import allowlist

H100 = dict(address='0000:3b:00.0', vendor_id='10de', product_id='2330',
            class_id='030200')
NIC = dict(address='0000:00:03.0', vendor_id='8086', product_id='1572',
           class_id='020000')
FPGA = dict(address='0000:81:00.0', vendor_id='1172', product_id='5052',
            class_id='120000')
UNREADABLE = dict(address='0000:05:00.0', vendor_id='', product_id='',
                  class_id='')

DEFAULT_CLASSES = ['0300', '0302', '1200']


class WhyNotTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('a 3D controller is allowed by class',
         dict(classes=DEFAULT_CLASSES, devices=[], denied=[], dev=H100,
              allowed=True)),
        ('an FPGA is allowed by class',
         dict(classes=DEFAULT_CLASSES, devices=[], denied=[], dev=FPGA,
              allowed=True)),
        ('a NIC is not allowed by the default classes',
         dict(classes=DEFAULT_CLASSES, devices=[], denied=[], dev=NIC,
              allowed=False)),
        ('a class prefix of two digits covers its subclasses',
         dict(classes=['03'], devices=[], denied=[], dev=H100,
              allowed=True)),
        ('a full six-digit class',
         dict(classes=['030200'], devices=[], denied=[], dev=H100,
              allowed=True)),
        ('classes may be written with 0x, in upper case',
         dict(classes=['0x0302'], devices=[], denied=[], dev=H100,
              allowed=True)),
        ('a NIC allowed by vendor:product',
         dict(classes=DEFAULT_CLASSES, devices=['8086:1572'], denied=[],
              dev=NIC, allowed=True)),
        ('ids may be written with 0x, in upper case',
         dict(classes=[], devices=['0x8086:0x1572'], denied=[], dev=NIC,
              allowed=True)),
        ('vendor:* allows every product of the vendor',
         dict(classes=[], devices=['10DE:*'], denied=[], dev=H100,
              allowed=True)),
        ('another product of the vendor is not allowed',
         dict(classes=[], devices=['10de:2331'], denied=[], dev=H100,
              allowed=False)),
        ('an empty class list allows only the listed devices',
         dict(classes=[], devices=[], denied=[], dev=H100, allowed=False)),
        ('a denied address wins over its class',
         dict(classes=DEFAULT_CLASSES, devices=['10de:*'],
              denied=['0000:3B:00.0'], dev=H100, allowed=False)),
        ('a stray empty class entry (allowed_classes = 0302, ,1200) does '
         'not allow every device',
         dict(classes=['0302', '', '1200'], devices=[], denied=[], dev=NIC,
              allowed=False)),
        ('a bare 0x class entry does not allow every device',
         dict(classes=['0x'], devices=[], denied=[], dev=NIC,
              allowed=False)),
        ('a device whose identity could not be read is not allowed',
         dict(classes=DEFAULT_CLASSES, devices=[], denied=[], dev=UNREADABLE,
              allowed=False)),
    ]

    def test_why_not(self):
        allow = allowlist.Allowlist.from_options(self.classes, self.devices,
                                                 self.denied)
        why = allow.why_not(**self.dev)
        if self.allowed:
            self.assertIsNone(why)
        else:
            self.assertIsInstance(why, str)
            self.assertNotEqual('', why)


class MessagesTest(testtools.TestCase):
    """A reason names the value and the option to change."""

    def test_not_in_the_lists(self):
        allow = allowlist.Allowlist.from_options(DEFAULT_CLASSES, [], [])
        why = allow.why_not(**NIC)
        self.assertIn('020000', why)
        self.assertIn('8086:1572', why)
        self.assertIn('[accelerator] allowed_classes', why)
        self.assertIn('[accelerator] allowed_devices', why)

    def test_denied(self):
        allow = allowlist.Allowlist.from_options(
            DEFAULT_CLASSES, [], ['0000:3b:00.0'])
        self.assertIn('[accelerator] denied_addresses', allow.why_not(**H100))

    def test_unreadable_identity_shows_question_marks(self):
        allow = allowlist.Allowlist.from_options([], [], [])
        why = allow.why_not(**UNREADABLE)
        self.assertIn('PCI class ?', why)
        self.assertIn('?:?', why)


class FromOptionsTest(testtools.TestCase):

    def test_normalised(self):
        allow = allowlist.Allowlist.from_options(
            ['0x0302', '12'], ['0x10DE:*'], ['0000:AF:00.0'])
        self.assertEqual(('0302', '12'), allow.classes)
        self.assertEqual(('10de:*',), allow.devices)
        self.assertEqual(('0000:af:00.0',), allow.denied)

    def test_empty_entries_are_dropped(self):
        allow = allowlist.Allowlist.from_options(['', '0x', '0302'], [], [])
        self.assertEqual(('0302',), allow.classes)
