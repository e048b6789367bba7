"""Loads the enabled drivers and runs discovery on a host.

Drivers are stevedore plugins in the ``cyborg_nova.drivers`` namespace,
named by ``[accelerator] enabled_drivers``.  A driver that fails to load or
to discover is reported (in :attr:`Discovery.failures` and the log) and
skipped; the others go on.  When two drivers report the same PCI address,
the more specific one (a vendor driver over the generic ``pci`` one, the
``mdev`` driver over the vendor one for a vGPU parent) describes it, and
the others' readings fill in what it did not measure: a load it did not
read is taken from another driver that read one, and a device any driver
found unhealthy is unhealthy (so a vGPU parent bound to ``nvidia`` keeps
NVML's load and XID health although the ``mdev`` driver reports it).
"""

import dataclasses
import logging

from stevedore import named

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import base
from cyborg_nova import errors

LOG = logging.getLogger(__name__)

NAMESPACE = 'cyborg_nova.drivers'


@dataclasses.dataclass
class Discovery:
    """The outcome of one discovery on a host."""

    devices: list                      # Device, sorted by address
    failures: dict                     # driver name -> why it was skipped
    drivers: dict                      # driver name -> driver object

    @property
    def tuning_drivers(self):
        return [d for d in self.drivers.values() if d.tuning]

    def by_address(self):
        return {d.address: d for d in self.devices}

    def driver_for(self, device):
        return self.drivers[device.driver]


def load_drivers(context, names, failures):
    """Instantiate the named drivers; record load failures in *failures*."""

    def on_load_failure(manager, entrypoint, exc):
        failures[entrypoint.name] = 'failed to load: %s' % exc
        LOG.warning('Accelerator driver %s failed to load and is skipped: '
                    '%s', entrypoint.name, exc)

    def on_missing(missing):
        for name in missing:
            if name in failures:    # stevedore counts failed loads as missing
                continue
            failures[name] = (
                'no such driver in the %s entry-point namespace; check '
                '[accelerator] enabled_drivers or install the package that '
                'provides it' % NAMESPACE)
            LOG.warning('Accelerator driver %s is not installed and is '
                        'skipped', name)

    mgr = named.NamedExtensionManager(
        NAMESPACE, names=list(names), invoke_on_load=True,
        invoke_args=(context,), name_order=True,
        on_load_failure_callback=on_load_failure,
        on_missing_entrypoints_callback=on_missing)
    return {ext.name: ext.obj for ext in mgr}


def discover(context, names=None, drivers=None):
    """Run every enabled driver's discovery and merge the results.

    Tests may pass *drivers* (name -> driver object) instead of loading
    entry points.
    """
    failures = {}
    if drivers is None:
        if names is None:
            names = context.conf.accelerator.enabled_drivers
        drivers = load_drivers(context, names, failures)
    seen = {}                          # address -> [Device], driver order
    for name, drv in drivers.items():
        if drv.tuning:
            continue
        try:
            found = list(drv.discover())
        except Exception as exc:   # one driver never stops the others
            failures[name] = 'discovery failed: %s' % exc
            LOG.warning('Accelerator driver %s failed to discover and is '
                        'skipped: %s', name, exc,
                        exc_info=not isinstance(exc, errors.CyborgNovaError))
            continue
        for dev in found:
            dev.driver = name          # the plugin name, as the contract says
            seen.setdefault(dev.address, []).append(dev)
    devices = sorted((_merge(views, drivers) for views in seen.values()),
                     key=lambda d: d.address)
    return Discovery(devices=devices, failures=failures, drivers=drivers)


def _merge(views, drivers):
    """One device from the drivers' *views* of it: the most specific
    driver's (the first on a tie), with the load and bad health the others
    measured where it has none."""
    ranked = sorted(views, key=lambda d: -drivers[d.driver].specificity)
    winner, others = ranked[0], ranked[1:]
    if winner.utilization is None:
        winner.utilization = next((d.utilization for d in others
                                   if d.utilization is not None), None)
    if winner.healthy:
        bad = next((d for d in others if not d.healthy), None)
        if bad is not None:
            winner.health = device_mod.Health.bad(
                '%s (seen by the %s driver)' % (bad.health.reason,
                                                bad.driver))
    return winner


def make_context(conf, sysfs_root=None, nvml=None):
    """A :class:`~cyborg_nova.drivers.base.HostContext` from config."""
    return base.HostContext(
        sysfs_root=sysfs_root or conf.accelerator.sysfs_root,
        conf=conf, nvml=nvml)
