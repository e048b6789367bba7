"""Parsers of sysfs attribute text.

Each takes the raw text of one attribute and returns a value, or raises
:class:`ValueError` with a message that names the value and says what was
expected; the caller adds the path.  CPU lists and PCI addresses are
parsed by Nova's own functions.
"""

import re

from nova import exception as nova_exception
from nova.pci import utils as pci_utils
from nova.virt import hardware

#: The kernel supports at most this many CPUs (CONFIG_NR_CPUS tops out at
#: 8192 on x86_64); anything above is a corrupt value, not a big host.
MAX_CPU_ID = 8191
#: NUMA node ids above this are corrupt (CONFIG_NODES_SHIFT is at most 10).
MAX_NUMA_NODE = 1023

_CPULIST_RE = re.compile(r'^\d{1,9}(-\d{1,9})?(,\d{1,9}(-\d{1,9})?)*$', re.A)
_HEX_RE = re.compile(r'^(0x)?[0-9a-fA-F]+$')
_INT_RE = re.compile(r'-?[0-9]{1,18}', re.A)
#: A CPU list naming more CPUs than this (counting repeats) is corrupt.
MAX_CPULIST_CPUS = 4 * (MAX_CPU_ID + 1)


def _clean(text):
    if text is None:
        raise ValueError('is missing')
    if isinstance(text, bytes):
        try:
            text = text.decode('ascii')
        except UnicodeDecodeError:
            raise ValueError('%r is not ASCII text' % text[:40])
    return text.strip()


def hex_id(text, digits=4):
    """``'0x10de\\n'`` -> ``'10de'`` (lower case, zero-padded to *digits*)."""
    value = _clean(text)
    if not _HEX_RE.match(value):
        raise ValueError('%r is not a hexadecimal id' % value)
    number = int(value, 16)
    if len(value.lower().removeprefix('0x')) > digits:
        raise ValueError('%r is longer than %d hexadecimal digits'
                         % (value, digits))
    return '%0*x' % (digits, number)


def pci_class(text):
    """``'0x030200'`` -> ``'030200'`` (class, subclass, prog-if)."""
    return hex_id(text, digits=6)


def numa_node(text):
    """``'1'`` -> 1; ``'-1'`` (the kernel does not know) -> None."""
    value = _clean(text)
    if not _INT_RE.fullmatch(value):
        raise ValueError('%r is not a NUMA node number' % value)
    node = int(value, 10)
    if node == -1:
        return None
    if node < 0 or node > MAX_NUMA_NODE:
        raise ValueError('%r is not a NUMA node number (expected -1 or '
                         '0-%d)' % (value, MAX_NUMA_NODE))
    return node


def cpulist(text):
    """``'0-3,8-11'`` -> ``(0, 1, 2, 3, 8, 9, 10, 11)``; empty -> ``()``."""
    value = _clean(text)
    if not value:
        return ()
    if not _CPULIST_RE.match(value):
        raise ValueError('%r is not a CPU list like 0-3,8-11' % value)
    numbers = [int(n) for n in re.findall(r'\d+', value)]
    if max(numbers) > MAX_CPU_ID:
        raise ValueError('%r names CPU %d, above the kernel limit of %d'
                         % (value, max(numbers), MAX_CPU_ID))
    named = 0
    for part in value.split(','):
        first, _, last = part.partition('-')
        named += int(last or first) - int(first) + 1
    if named > MAX_CPULIST_CPUS:
        raise ValueError('%r names %d CPUs, more than a host can have'
                         % (value[:60], named))
    try:
        cpus = hardware.parse_cpu_spec(value)
    except nova_exception.Invalid as exc:
        raise ValueError('%r is not a CPU list: %s' % (value, exc))
    return tuple(sorted(cpus))


def pci_address(text):
    """Validate a PCI address (``0000:00:06.0``) and return it lower case."""
    value = _clean(text).lower()
    try:
        domain, bus, slot, func = pci_utils.parse_address(value)
        address = pci_utils.get_pci_address(domain, bus, slot, func)
    except nova_exception.PciDeviceWrongAddressFormat:
        address = None
    # Nova's pattern is lenient (any character for the dot, any Unicode
    # digit): insist on the canonical ASCII form.
    if address != value or not value.isascii():
        raise ValueError('%r is not a PCI address like 0000:3b:00.0' % value)
    return address


def is_pci_address(text):
    try:
        return pci_address(text) == _clean(text).lower()
    except ValueError:
        return False


def word_list(text):
    """``'flr bus\\n'`` -> ``('flr', 'bus')``."""
    return tuple(_clean(text).split())


def integer(text, minimum=0):
    value = _clean(text)
    if not _INT_RE.fullmatch(value):
        raise ValueError('%r is not an integer' % value)
    number = int(value, 10)
    if number < minimum:
        raise ValueError('%r is below %d' % (value, minimum))
    return number


def text_value(text):
    """Plain text; ``'(null)'`` (the kernel's empty driver_override) -> ''."""
    value = _clean(text)
    return '' if value == '(null)' else value
