"""A device driver for tests: its devices are whatever the test says.

Never enable it on a real host.  Tests set :attr:`FakeDriver.DEVICES`
(built with :func:`make_device`), read :attr:`FakeDriver.CALLS` to see what
happened, make a call fail with :meth:`FakeDriver.fail`, and undo all of it
with :meth:`FakeDriver.reset` (add it as a cleanup).  The state is on the
class because stevedore, and Nova's compute service in functional tests,
build the driver themselves.
"""

import collections
import dataclasses

import os_resource_classes as orc

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import base
from cyborg_nova import errors
from cyborg_nova.policy import classify

#: One recorded call; *address* and *instance_uuid* are None where the
#: method has none.
Call = collections.namedtuple('Call', 'method address instance_uuid')

METHODS = ('discover', 'setup', 'attach', 'detach', 'uninstall')


def make_device(address='0000:81:00.0', numa_node=0,
                resource_class=orc.PGPU, vendor_id='10de',
                product_id='2330', **fields):
    """A described, assignable device (an H100 on node 0 by default);
    *fields* set any other :class:`~cyborg_nova.device.Device` field."""
    traits = classify.identity_traits(vendor_id, product_id)
    if numa_node is not None:
        traits.add(classify.numa_trait(numa_node))
    values = dict(
        address=address, vendor_id=vendor_id, product_id=product_id,
        class_id='030200', driver=FakeDriver.name, numa_node=numa_node,
        numa_source='numa_node' if numa_node is not None else '',
        kernel_driver='vfio-pci', reset_methods=('flr',),
        resource_class=resource_class, traits=frozenset(traits))
    values.update(fields)
    return device_mod.Device(**values)


class FakeDriver(base.AcceleratorDriver):

    name = 'fake'
    #: A test's word beats what any real driver reads.
    specificity = 100

    DEVICES = []
    CALLS = []
    #: (method, address or None for any) -> exception to raise
    FAILURES = {}

    @classmethod
    def reset(cls):
        cls.DEVICES = []
        cls.CALLS = []
        cls.FAILURES = {}

    @classmethod
    def fail(cls, method, address=None, exc=None):
        """Make every later *method* call (on *address*, or on any device)
        raise *exc*, by default a :class:`~cyborg_nova.errors.DriverError`."""
        if method not in METHODS:
            raise ValueError('cannot inject a failure into %r: use one of %s'
                             % (method, ', '.join(METHODS)))
        cls.FAILURES[(method, address)] = exc or errors.DriverError(
            'injected failure of fake %s%s' % (
                method, ' on %s' % address if address else ''))

    @classmethod
    def calls_of(cls, method):
        return [c for c in cls.CALLS if c.method == method]

    def _record(self, method, address=None, instance_uuid=None):
        type(self).CALLS.append(Call(method, address, instance_uuid))
        failures = type(self).FAILURES
        exc = failures.get((method, address)) or failures.get((method, None))
        if exc is not None:
            raise exc

    def _known(self, device):
        if not any(d.address == device.address for d in type(self).DEVICES):
            raise errors.DeviceNotFound(
                'device %s is not one of the fake devices (%s); add it to '
                'FakeDriver.DEVICES' % (device.address, ', '.join(
                    d.address for d in type(self).DEVICES) or 'none'))

    def discover(self):
        self._record('discover')
        return [dataclasses.replace(d, driver=self.name)
                for d in type(self).DEVICES]

    def setup(self, device):
        self._record('setup', device.address)

    def uninstall(self, device):
        self._record('uninstall', device.address)

    def attach(self, device, instance_uuid):
        self._record('attach', device.address, instance_uuid)
        self._known(device)
        if not device.assignable:
            raise errors.NotAssignable(device.address, device.reasons)
        return device_mod.PciHostdev(address=device.address)

    def detach(self, device, instance_uuid):
        self._record('detach', device.address, instance_uuid)
