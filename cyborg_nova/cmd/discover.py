"""``cyborg-nova discover``: the accelerators of a host, and why each is or
is not assignable.

``--format json`` prints a JSON list with one object per device
(:meth:`cyborg_nova.device.Device.to_dict`): a contract other tools rely on,
so the top level stays a plain list.  ``--format table`` (the default) is
for people: the accelerators with their reasons, then every other PCI
device seen with why it is not offered, then what each driver did.

A driver that fails to load or to discover is reported on standard error,
one line per driver, and skipped; the exit status is 0 unless every device
driver failed (1) or the configuration is unusable (2).
"""

import json
import logging
import os
import sys

from oslo_config import cfg

from cyborg_nova.cmd import main
from cyborg_nova import conf as conf_mod
from cyborg_nova import discovery
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.policy import classify
from cyborg_nova import report
from cyborg_nova.sysfs import host as sysfs_host

LOG = logging.getLogger(__name__)

PROG = 'cyborg-nova discover'

#: Loggers whose warnings repeat what this command reports itself.
QUIET_LOGGERS = (discovery.__name__,)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'discover',
        help='list the accelerators of this host and whether each may be '
             'handed to a guest',
        description='Run the enabled device drivers ([accelerator] '
                    'enabled_drivers) and show what they found: NUMA node, '
                    'IOMMU group, resource class, traits, health, and why a '
                    'device may not be handed to a guest.')
    parser.add_argument(
        '--sysfs-root', metavar='DIR',
        help='read this sysfs tree instead of [accelerator] sysfs_root '
             '(default /sys); for captured or synthetic hosts')
    main.add_config_file_argument(
        parser, 'an oslo.config file with an [accelerator] section, such '
                'as /etc/nova/nova.conf; may be repeated (default: none, '
                'the built-in defaults)')
    parser.add_argument(
        '--format', choices=('table', 'json'), default='table',
        help='table for people (default), json for tools')
    parser.set_defaults(func=run, quiet_loggers=QUIET_LOGGERS)
    return parser


def load_config(config_files=()):
    """A fresh config object holding ``[accelerator]`` (never the global
    CONF), read from *config_files*.

    Raises :class:`oslo_config.cfg.Error` for a missing or malformed file
    or a bad value, :class:`~cyborg_nova.errors.ConfigError` for a bad
    ``resource_classes`` entry.  (``--sysfs-root`` goes into the host
    context, not into an override: oslo.config shares a registered group's
    overrides between config objects registering the same ``OptGroup``.)
    """
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf(args=[], project='cyborg-nova', prog='cyborg-nova',
         default_config_files=list(config_files), default_config_dirs=[],
         use_env=False)
    # Read every option now, so a bad value is reported here, naming it,
    # and not as a traceback from deep inside a driver.
    for name in conf[conf_mod.GROUP]:
        getattr(conf[conf_mod.GROUP], name)
    classify.check_overrides(conf.accelerator.resource_classes)
    return conf


def other_devices(context, result):
    """Every PCI device of the host not in *result*, described by the
    generic PCI driver, and an error message ('' when all went well)."""
    driver = result.drivers.get('pci')
    try:
        if not isinstance(driver, pci.PciDriver):
            driver = pci.PciDriver(context)
        seen = result.by_address()
        return [d for d in driver.describe_all()
                if d.address not in seen], ''
    except Exception as exc:      # a report for people never crashes
        return [], 'could not list the other PCI devices: %s' % exc


class OtherHostNvml(object):
    """Stands in for ``pynvml`` when the sysfs tree is not this host's:
    NVML describes the running host, whose GPUs must not be mixed with a
    captured or synthetic tree's."""

    class NVMLError(Exception):
        pass

    def __init__(self, root):
        self.root = root

    def nvmlInit(self):
        raise self.NVMLError('not used with the sysfs tree %s: NVML would '
                             'describe this host\'s GPUs, not the tree\'s'
                             % self.root)


def nvml_for(root):
    """None (the driver loads ``pynvml``) for this host's sysfs, else an
    :class:`OtherHostNvml`."""
    if os.path.realpath(root) == os.path.realpath('/sys'):
        return None
    return OtherHostNvml(root)


def host_summary(context):
    """``(numa_nodes, iommu_enabled)`` of the host, for the table."""
    host = sysfs_host.SysfsHost(context.sysfs_root)
    return host.numa_nodes(), host.iommu_enabled()


def _json_default(value):
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) \
            else list(value)
    return str(value)


def _error(message):
    print('%s: %s' % (PROG, message), file=sys.stderr)


def run(args):
    try:
        conf = load_config(args.config_files)
    except (cfg.Error, ValueError, errors.ConfigError) as exc:
        _error('configuration error: %s' % exc)
        return 2
    root = args.sysfs_root or conf.accelerator.sysfs_root
    if not os.path.isdir(root):
        _error('sysfs root %s is not a directory; give an existing tree '
               'with --sysfs-root or [accelerator] sysfs_root' % root)
        return 2
    if not os.path.isdir(os.path.join(root, 'bus', 'pci', 'devices')):
        _error('warning: %s has no bus/pci/devices: is it a sysfs tree?'
               % root)

    LOG.debug('Discovering on sysfs tree %s with drivers %s (config files: '
              '%s)', root, ', '.join(conf.accelerator.enabled_drivers),
              ', '.join(args.config_files) or 'none')
    context = discovery.make_context(conf, sysfs_root=root,
                                     nvml=nvml_for(root))
    result = discovery.discover(context)
    for name, why in sorted(result.failures.items()):
        _error('driver %s skipped: %s' % (name, why))
    ran = [n for n, d in result.drivers.items()
           if not d.tuning and n not in result.failures]
    tuning = [n for n, d in result.drivers.items()
              if d.tuning and n not in result.failures]

    if args.format == 'json':
        json.dump([d.to_dict() for d in result.devices], sys.stdout,
                  indent=2, default=_json_default)
        sys.stdout.write('\n')
    else:
        others, problem = other_devices(context, result)
        if problem:
            _error(problem)
        numa_nodes, iommu = host_summary(context)
        notes = {n: 'degraded: %s' % result.drivers[n].degraded
                 for n in ran if getattr(result.drivers[n], 'degraded', None)}
        sys.stdout.write(report.discovery_table(
            result.devices, others, drivers_ran=ran, failures=result.failures,
            tuning_drivers=tuning, driver_notes=notes,
            host=report.host_line(root, numa_nodes, iommu)))

    if not ran:
        enabled = ', '.join(conf.accelerator.enabled_drivers) or 'none'
        _error('no device driver ran (enabled: %s); see the lines above '
               'and [accelerator] enabled_drivers' % enabled)
        return 1
    return 0
