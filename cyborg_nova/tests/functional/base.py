"""Base class of cyborg-nova's functional tests.

Tests run Nova for real in its own functional harness (API, conductor,
scheduler, Placement, and libvirt computes over fakelibvirt), with every
compute started on
:class:`~cyborg_nova.virt_hooks.driver.AcceleratedLibvirtDriver`, loaded the
way an operator loads it: ``compute_driver =
cyborg_nova.AcceleratedLibvirtDriver``, which Nova imports as
``nova.virt.cyborg_nova``.

Subclasses may set:

* ``HOST_INFO``: a dict ``{hostname: fakelibvirt.HostInfo(...)}`` giving
  each host its own NUMA layout (or pass ``host_info=`` to
  :meth:`start_compute` directly); hosts not listed get
  ``DEFAULT_HOST_INFO``;
* ``ADDITIONAL_AVAILABLE_FILTERS``: dotted paths of scheduler filters to
  make available, and ``ADDITIONAL_FILTERS``: their class names to enable.
"""

import importlib
import sys
import types

from nova import conf as nova_conf
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as libvirt_base

from cyborg_nova.virt_hooks import driver as cn_driver

CONF = nova_conf.CONF

#: What operators write in nova.conf.
COMPUTE_DRIVER = 'cyborg_nova.AcceleratedLibvirtDriver'
SHIM_MODULE = 'nova.virt.cyborg_nova'


def shim_is_installed():
    """True when ``nova/virt/cyborg_nova.py`` is installed inside Nova."""
    try:
        importlib.import_module(SHIM_MODULE)
    except ImportError:
        return False
    return True


class AcceleratorTestBase(libvirt_base.ServersTestBase):
    """Nova's libvirt functional base, with computes on our driver."""

    #: Newest API by default (``networks='none'`` needs 2.37 or later).
    microversion = 'latest'

    #: Dotted paths added to ``[filter_scheduler] available_filters`` before
    #: the scheduler starts.
    ADDITIONAL_AVAILABLE_FILTERS = []
    #: Class names appended to ``[filter_scheduler] enabled_filters``
    #: (Nova's base class handles this list).
    ADDITIONAL_FILTERS = []
    #: ``{hostname: fakelibvirt.HostInfo}``; see :meth:`start_compute`.
    HOST_INFO = {}

    @staticmethod
    def host_info(cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2,
                  kB_mem=16 * 1024 * 1024):
        """A host layout: ``cpu_nodes`` NUMA nodes of ``cpu_sockets`` x
        ``cpu_cores`` x ``cpu_threads`` CPUs each (Nova's harness accounts
        for at most 16 online CPUs)."""
        return fakelibvirt.HostInfo(
            cpu_nodes=cpu_nodes, cpu_sockets=cpu_sockets,
            cpu_cores=cpu_cores, cpu_threads=cpu_threads, kB_mem=kB_mem)

    DEFAULT_HOST_INFO = None

    def setUp(self):
        if not shim_is_installed():
            # The package is not installed non-editable into this
            # virtualenv (for example ``pip install -e``, or tests run from
            # a bare checkout), so nova/virt/cyborg_nova.py is not inside
            # Nova's folder.  Fall back to a module object in sys.modules so
            # that Nova's loader still resolves the same dotted path; the
            # packaging unit test is what proves the real shim ships.
            shim = types.ModuleType(SHIM_MODULE)
            shim.AcceleratedLibvirtDriver = cn_driver.AcceleratedLibvirtDriver
            sys.modules[SHIM_MODULE] = shim
            self.addCleanup(sys.modules.pop, SHIM_MODULE, None)
        super().setUp()

    def _setup_compute_service(self):
        # Like Nova's base: computes are started by the tests, each with its
        # own host layout; only the driver differs.
        self.flags(compute_driver=COMPUTE_DRIVER)

    def _setup_scheduler_service(self):
        if self.ADDITIONAL_AVAILABLE_FILTERS:
            available = list(CONF.filter_scheduler.available_filters)
            available += [f for f in self.ADDITIONAL_AVAILABLE_FILTERS
                          if f not in available]
            self.flags(available_filters=available, group='filter_scheduler')
        return super()._setup_scheduler_service()

    def start_compute(self, hostname='compute1', host_info=None, *args,
                      **kwargs):
        """Start a compute on our driver.

        ``host_info`` defaults to ``HOST_INFO[hostname]``, then to
        ``DEFAULT_HOST_INFO``, then to Nova's default (2 NUMA nodes of 2
        cores x 2 threads).  Other keyword arguments are those of Nova's
        ``ServersTestBase.start_compute`` (``pci_info``, ``mdev_info``...),
        also positionally, as Nova's ``restart_compute_service`` passes them.
        """
        connection = kwargs.get('connection', args[6] if len(args) > 6
                                else None)
        if host_info is None and connection is None:
            host_info = self.HOST_INFO.get(hostname, self.DEFAULT_HOST_INFO)
        return super().start_compute(hostname, host_info, *args, **kwargs)

    def driver_of(self, hostname):
        """The virt driver instance of a started compute."""
        return self.computes[hostname].manager.driver
