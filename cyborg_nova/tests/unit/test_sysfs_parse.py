"""Parsing sysfs attribute text: ``cyborg_nova.sysfs.parse``.

Every parser either returns a value or raises :class:`ValueError` whose
message names the value; never another exception, never a huge allocation,
whatever a broken or hostile sysfs tree holds.
"""

import time
import tracemalloc

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import testscenarios
import testtools

from cyborg_nova.sysfs import parse

#: Every parser of attribute text, by name.
PARSERS = {
    'hex_id': parse.hex_id,
    'pci_class': parse.pci_class,
    'numa_node': parse.numa_node,
    'cpulist': parse.cpulist,
    'pci_address': parse.pci_address,
    'word_list': parse.word_list,
    'integer': parse.integer,
    'text_value': parse.text_value,
}

HUGE_NUMBER = '9' * 5000          # above Python's int() digit limit


def _mentions_value(message, raw):
    """Does the error *message* name the value *raw*?  It names it as
    parsed (stripped, maybe lower-cased) with %r, a long one by a prefix:
    look for the escaped text of the value's start, up to its first quote
    (repr() picks its quotes by what the whole value holds)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode('ascii').strip()
        except UnicodeDecodeError:
            pass
    else:
        raw = raw.strip()
    prefix = raw[:10]
    for quote in ('"', "'") if isinstance(raw, str) else (b'"', b"'"):
        prefix = prefix.split(quote)[0]
    body = repr(prefix)[2:-1] if isinstance(raw, bytes) else repr(prefix)[1:-1]
    return body.lower() in message.lower()


class ValidValuesTest(testscenarios.WithScenarios, testtools.TestCase):
    """What well-formed attributes, as the kernel writes them, parse to."""

    scenarios = [
        ('vendor id as the kernel writes it',
         dict(parser='hex_id', text='0x10de\n', expected='10de')),
        ('vendor id as bytes, upper case',
         dict(parser='hex_id', text=b'0x10DE\n', expected='10de')),
        ('a short id is zero-padded',
         dict(parser='hex_id', text='0x1', expected='0001')),
        ('an id without 0x',
         dict(parser='hex_id', text='2330', expected='2330')),
        ('surrounding blanks are ignored',
         dict(parser='hex_id', text='  0x2330 \n', expected='2330')),
        ('3D controller class',
         dict(parser='pci_class', text='0x030200\n', expected='030200')),
        ('processing accelerator class',
         dict(parser='pci_class', text=b'0x120000\n', expected='120000')),
        ('NUMA node 0',
         dict(parser='numa_node', text='0\n', expected=0)),
        ('NUMA node 1 as bytes',
         dict(parser='numa_node', text=b'1\n', expected=1)),
        ('the kernel does not know the NUMA node',
         dict(parser='numa_node', text='-1\n', expected=None)),
        ('the highest NUMA node id',
         dict(parser='numa_node', text='1023', expected=1023)),
        ('a CPU list with two ranges',
         dict(parser='cpulist', text='0-3,8-11\n',
              expected=(0, 1, 2, 3, 8, 9, 10, 11))),
        ('one CPU',
         dict(parser='cpulist', text='5', expected=(5,))),
        ('a one-CPU range',
         dict(parser='cpulist', text='7-7', expected=(7,))),
        ('CPUs come back sorted',
         dict(parser='cpulist', text='9,2-3', expected=(2, 3, 9))),
        ('an empty CPU list (a node without CPUs)',
         dict(parser='cpulist', text='\n', expected=())),
        ('the highest CPU the kernel supports',
         dict(parser='cpulist', text='8191', expected=(8191,))),
        ('the H100 VM capture local_cpulist',
         dict(parser='cpulist', text=b'0-15\n', expected=tuple(range(16)))),
        ('a PCI address',
         dict(parser='pci_address', text='0000:3b:00.0',
              expected='0000:3b:00.0')),
        ('a PCI address is lower-cased',
         dict(parser='pci_address', text='0000:AF:00.7\n',
              expected='0000:af:00.7')),
        ('reset methods',
         dict(parser='word_list', text='flr bus\n', expected=('flr', 'bus'))),
        ('no reset method',
         dict(parser='word_list', text='\n', expected=())),
        ('an integer',
         dict(parser='integer', text='16\n', expected=16)),
        ('zero',
         dict(parser='integer', text=b'0', expected=0)),
        ('plain text',
         dict(parser='text_value', text='GRID T4-1B\n',
              expected='GRID T4-1B')),
        ('the kernel\'s empty driver_override',
         dict(parser='text_value', text='(null)\n', expected='')),
        ('link speed',
         dict(parser='text_value', text=b'32.0 GT/s PCIe\n',
              expected='32.0 GT/s PCIe')),
    ]

    def test_parses(self):
        self.assertEqual(self.expected, PARSERS[self.parser](self.text))


class MalformedValuesTest(testscenarios.WithScenarios, testtools.TestCase):
    """Malformed attributes raise ValueError naming the value and saying
    what was expected."""

    scenarios = [
        ('an empty id', dict(parser='hex_id', text='', says='hexadecimal')),
        ('a bare 0x', dict(parser='hex_id', text='0x', says='hexadecimal')),
        ('an id that is not hex',
         dict(parser='hex_id', text='0xzz10', says='hexadecimal')),
        ('a negative id',
         dict(parser='hex_id', text='-0x10de', says='hexadecimal')),
        ('an id of five digits',
         dict(parser='hex_id', text='0x10de0', says='longer than 4')),
        ('a huge id', dict(parser='hex_id', text='0x' + 'f' * 4000,
                           says='longer than 4')),
        ('an id of full-width digits',
         dict(parser='hex_id', text='\uff11\uff10', says='hexadecimal')),
        ('an id of non-ASCII bytes',
         dict(parser='hex_id', text=b'\xff\xfe10de', says='not ASCII')),
        ('(null) is no id',
         dict(parser='hex_id', text='(null)', says='hexadecimal')),
        ('a class of seven digits',
         dict(parser='pci_class', text='0x0302000', says='longer than 6')),
        ('a NUMA node that is a word',
         dict(parser='numa_node', text='abc', says='NUMA node')),
        ('an empty NUMA node', dict(parser='numa_node', text='',
                                    says='NUMA node')),
        ('a NUMA node below -1',
         dict(parser='numa_node', text='-2', says='expected -1 or 0-1023')),
        ('a NUMA node above the kernel limit',
         dict(parser='numa_node', text='1024', says='expected -1 or 0-1023')),
        ('a huge NUMA node',
         dict(parser='numa_node', text=HUGE_NUMBER, says='NUMA node')),
        ('a fractional NUMA node',
         dict(parser='numa_node', text='1.0', says='NUMA node')),
        ('a hexadecimal NUMA node',
         dict(parser='numa_node', text='0x1', says='NUMA node')),
        ('a NUMA node with a digit separator',
         dict(parser='numa_node', text='1_0', says='NUMA node')),
        ('a NUMA node with a plus sign',
         dict(parser='numa_node', text='+1', says='NUMA node')),
        ('a NUMA node of Arabic-Indic digits',
         dict(parser='numa_node', text='\u0661', says='NUMA node')),
        ('(null) is no NUMA node',
         dict(parser='numa_node', text='(null)', says='NUMA node')),
        ('a CPU list that is a word',
         dict(parser='cpulist', text='all', says='CPU list')),
        ('a reversed range',
         dict(parser='cpulist', text='3-1', says='CPU list')),
        ('a trailing comma',
         dict(parser='cpulist', text='0-3,', says='CPU list')),
        ('an empty element',
         dict(parser='cpulist', text='0,,1', says='CPU list')),
        ('a negative CPU', dict(parser='cpulist', text='-1',
                                says='CPU list')),
        ('a double dash', dict(parser='cpulist', text='1--3',
                               says='CPU list')),
        ('an exclusion (Nova syntax, not the kernel\'s)',
         dict(parser='cpulist', text='0-3,^2', says='CPU list')),
        ('a CPU above the kernel limit',
         dict(parser='cpulist', text='8192', says='kernel limit')),
        ('a range to CPU 999999999',
         dict(parser='cpulist', text='0-999999999', says='kernel limit')),
        ('a range to a CPU of 14 digits',
         dict(parser='cpulist', text='0-99999999999999', says='CPU list')),
        ('a CPU of more digits than int() converts',
         dict(parser='cpulist', text=HUGE_NUMBER, says='CPU list')),
        ('a range of Arabic-Indic digits',
         dict(parser='cpulist', text='\u0660-\u0663', says='CPU list')),
        ('(null) is no CPU list',
         dict(parser='cpulist', text='(null)', says='CPU list')),
        ('an address without function',
         dict(parser='pci_address', text='0000:3b:00', says='PCI address')),
        ('an address with function 8',
         dict(parser='pci_address', text='0000:3b:00.8', says='PCI address')),
        ('an address with x for the dot',
         dict(parser='pci_address', text='0000:3b:00x0', says='PCI address')),
        ('an address of Arabic-Indic digits',
         dict(parser='pci_address', text='\u0660' * 4 + ':3b:00.0',
              says='PCI address')),
        ('a negative integer',
         dict(parser='integer', text='-1', says='below 0')),
        ('an integer that is a word',
         dict(parser='integer', text='many', says='not an integer')),
        ('a huge integer',
         dict(parser='integer', text=HUGE_NUMBER, says='not an integer')),
        ('an integer with a digit separator',
         dict(parser='integer', text='1_000', says='not an integer')),
        ('non-ASCII text', dict(parser='text_value', text=b'GRID \xe9',
                                says='not ASCII')),
        ('non-ASCII words', dict(parser='word_list', text=b'\x80flr',
                                 says='not ASCII')),
    ]

    def test_raises_value_error_naming_the_value(self):
        exc = self.assertRaises(ValueError, PARSERS[self.parser], self.text)
        self.assertIn(self.says, str(exc))
        self.assertTrue(_mentions_value(str(exc), self.text),
                        '%r does not name the value' % str(exc))


class MissingValueTest(testtools.TestCase):

    def test_every_parser_says_a_missing_value_is_missing(self):
        for name, parser in PARSERS.items():
            exc = self.assertRaises(ValueError, parser, None)
            self.assertIn('missing', str(exc), name)


class PciAddressTest(testtools.TestCase):

    def test_is_pci_address(self):
        self.assertTrue(parse.is_pci_address('0000:3b:00.0'))
        self.assertTrue(parse.is_pci_address('0000:AF:00.0'))

    def test_is_not_pci_address(self):
        for text in ('pci0000:00', '0000:3b:00', '0000:3b:00x0', '', 'power',
                     '0000:3b:00.0:extra'):
            self.assertFalse(parse.is_pci_address(text), text)

    def test_is_not_pci_address_in_other_digits(self):
        text = '\u0660' * 4 + ':3b:00.0'
        self.assertFalse(parse.is_pci_address(text), text)


class BoundedCostTest(testtools.TestCase):
    """A corrupt attribute costs little time and memory: the kernel limits
    are checked before any list of CPUs is built."""

    CASES = [
        ('cpulist', '0-' + '9' * 30),
        ('cpulist', '0-4294967295'),
        ('cpulist', ','.join('%d-%d' % (i, i + 9000) for i in range(500))),
        ('cpulist', HUGE_NUMBER),
        ('numa_node', HUGE_NUMBER),
        ('integer', HUGE_NUMBER),
        ('hex_id', 'f' * 65536),
    ]

    def test_corrupt_values_are_refused_cheaply(self):
        for name, text in self.CASES:
            tracemalloc.start()
            start = time.monotonic()
            try:
                self.assertRaises(ValueError, PARSERS[name], text)
                elapsed = time.monotonic() - start
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            self.assertLess(peak, 4 * 1024 * 1024, (name, text[:40]))
            self.assertLess(elapsed, 1.0, (name, text[:40]))

    def test_many_repeated_ranges_are_refused_cheaply(self):
        # 8 KiB of '0-8191,0-8191,...': at most 8192 CPUs, but Nova's
        # parse_cpu_spec builds a set of 8192 per range (64 KiB, as much
        # as sysfs gives, takes seconds).
        text = ','.join(['0-8191'] * (8192 // len('0-8191,')))
        start = time.monotonic()
        try:
            cpus = parse.cpulist(text)
        except ValueError:
            cpus = ()
        elapsed = time.monotonic() - start
        self.assertLessEqual(len(cpus), parse.MAX_CPU_ID + 1)
        self.assertLess(elapsed, 0.1)


# -- property: a value or a ValueError naming it, for anything -------------

_SPECIAL = st.sampled_from([
    '', '\n', ' ', '(null)', '-1', '-0', '0', '+1', '1_0', '0x', '0x10de',
    '0-', '-', ',', '0-3,8-11', '8191', '8192', '1023', '1024', HUGE_NUMBER,
    '0-' + HUGE_NUMBER, '\u0663', '\uff11', '0000:3b:00.0', '\x00', 'nan',
    'inf', '1e3', 'flr bus', '\udcff',
])
_NUMBER_TEXT = st.integers(min_value=-10 ** 40, max_value=10 ** 40).map(str)
_CPU_RANGES = st.lists(
    st.tuples(st.integers(-3, 10 ** 12), st.integers(-3, 10 ** 12)),
    min_size=1, max_size=8,
).map(lambda pairs: ','.join('%d-%d' % p for p in pairs))
_HEX_TEXT = st.integers(min_value=0, max_value=16 ** 12).map(
    lambda n: '0x%x' % n)
_WRAPPED = st.tuples(st.sampled_from(['', ' ', '\n', '\t']),
                     st.one_of(_SPECIAL, _NUMBER_TEXT, _CPU_RANGES,
                               _HEX_TEXT, st.text(max_size=40)),
                     st.sampled_from(['', '\n', ' \n', '\x00'])).map(''.join)
ANY_ATTRIBUTE_TEXT = st.one_of(
    _WRAPPED,
    _WRAPPED.map(lambda t: t.encode('utf-8', 'surrogateescape')),
    st.text(),
    st.binary(max_size=200),
)


class AnyTextTest(testtools.TestCase):

    def _check(self, name, text):
        try:
            value = PARSERS[name](text)
        except ValueError as exc:
            self.assertTrue(_mentions_value(str(exc), text),
                            '%s(%r): %r does not name the value'
                            % (name, text, str(exc)))
            return None
        return value

    @settings(max_examples=300, deadline=None)
    @given(text=ANY_ATTRIBUTE_TEXT,
           name=st.sampled_from(sorted(PARSERS)))
    def test_a_value_or_a_value_error_naming_it(self, text, name):
        self._check(name, text)

    @settings(max_examples=200, deadline=None)
    @given(text=ANY_ATTRIBUTE_TEXT)
    def test_a_parsed_cpulist_is_within_the_kernel_limit(self, text):
        cpus = self._check('cpulist', text)
        if cpus is not None:
            self.assertEqual(tuple(sorted(set(cpus))), cpus)
            self.assertTrue(all(0 <= c <= parse.MAX_CPU_ID for c in cpus))

    @settings(max_examples=200, deadline=None)
    @given(text=ANY_ATTRIBUTE_TEXT)
    def test_a_parsed_numa_node_is_none_or_in_range(self, text):
        node = self._check('numa_node', text)
        if node is not None:
            self.assertTrue(0 <= node <= parse.MAX_NUMA_NODE)

    @settings(max_examples=200, deadline=None)
    @given(text=ANY_ATTRIBUTE_TEXT)
    def test_a_parsed_id_is_four_lower_case_hex_digits(self, text):
        value = self._check('hex_id', text)
        if value is not None:
            self.assertRegex(value, '^[0-9a-f]{4}$')

    @settings(max_examples=100, deadline=None)
    @given(node=st.integers(min_value=-1, max_value=parse.MAX_NUMA_NODE))
    def test_every_numa_node_the_kernel_writes_parses(self, node):
        self.assertEqual(None if node == -1 else node,
                         parse.numa_node('%d\n' % node))

    @settings(max_examples=100, deadline=None)
    @given(cpus=st.sets(st.integers(0, parse.MAX_CPU_ID), min_size=1,
                        max_size=64))
    def test_cpu_lists_round_trip(self, cpus):
        text = ','.join(str(c) for c in sorted(cpus))
        self.assertEqual(tuple(sorted(cpus)), parse.cpulist(text + '\n'))
