"""Reads the Nova and Placement settings that
:mod:`cyborg_nova.policy.deployment` checks, and logs what it finds.

* nova-scheduler: when our filter is first built (that is, when the
  scheduler starts), the filter, weigher and ``max_placement_results``
  settings, and ``placement.conf`` when ``[accelerator]
  placement_config_file`` can be read there (Placement usually runs on the
  same controller);
* nova-compute: in ``init_host``, the compute driver and any overlap with
  Nova's own ``[pci] device_spec`` and ``[devices] enabled_mdev_types``;
* ``cyborg-nova check``: all of them, printed, with ``nova-status``'s exit
  status.

Findings are logged once per process: a warning or an error at that level,
with what to do; what is fine at INFO.
"""

import configparser
import logging
import os
import threading

from oslo_utils import strutils

from cyborg_nova.policy import deployment

LOG = logging.getLogger(__name__)

DEFAULT_PLACEMENT_CONFIG = '/etc/placement/placement.conf'

_logged = set()
_logged_lock = threading.Lock()


def read_placement_conf(path):
    """``(settings, problem)``: the keyword arguments of
    :func:`deployment.check_placement` read from the file at *path*, or
    None and why not."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding='utf-8') as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        return None, 'cannot read %s: %s' % (path, exc)

    def get(section, option, default):
        return parser.get(section, option, fallback=default).strip()

    settings = {}
    try:
        settings['randomize'] = strutils.bool_from_string(
            get('placement', 'randomize_allocation_candidates', 'false'),
            strict=True)
        settings['wide_trees'] = strutils.bool_from_string(
            get('workarounds', 'optimize_for_wide_provider_trees', 'false'),
            strict=True)
        settings['max_candidates'] = int(
            get('placement', 'max_allocation_candidates', '-1'))
    except ValueError as exc:
        return None, '%s holds a value Placement itself would refuse: %s' % (
            path, exc)
    settings['strategy'] = get(
        'placement', 'allocation_candidates_generation_strategy',
        'depth-first')
    return settings, None


def placement_findings(path, explicit=True):
    """Findings on the ``placement.conf`` at *path*.  A file that cannot
    be read is a warning when the operator named it (*explicit*), else one
    line saying it was not checked here."""
    settings, problem = read_placement_conf(path)
    if settings is not None:
        return deployment.check_placement(**settings)
    level = deployment.WARNING if explicit else deployment.OK
    return [deployment.Finding(
        level, '[accelerator] placement_config_file',
        '%s: the Placement settings cyborg-nova relies on were not checked '
        'here; run "cyborg-nova check --placement-config-file FILE" where '
        'placement.conf is' % problem)]


def nova_scheduler_findings(conf, groups_per_host=None):
    """Findings on the scheduler settings of *conf* (Nova's CONF);
    *groups_per_host* as :func:`deployment.check_scheduler` takes it."""
    return deployment.check_scheduler(
        conf.filter_scheduler.enabled_filters,
        conf.filter_scheduler.weight_classes,
        conf.scheduler.max_placement_results, groups_per_host)


def scheduler_findings(conf):
    """What nova-scheduler logs when it starts: its settings, and those of
    ``[accelerator] placement_config_file`` when it can be read here."""
    found = nova_scheduler_findings(conf)
    path = conf.accelerator.placement_config_file
    if path:
        found += placement_findings(
            path, explicit=path != DEFAULT_PLACEMENT_CONFIG or
            os.path.exists(path))
    return deployment.worst_first(found)


def nova_pci_overlap(device_spec, devices):
    """Addresses of the assignable *devices* that Nova's own ``[pci]
    device_spec`` (its list of JSON strings) also matches."""
    if not device_spec:
        return []
    from nova import exception
    from nova.pci import whitelist
    try:
        specs = whitelist.Whitelist(device_spec)
    except exception.NovaException as exc:
        LOG.warning('[pci] device_spec could not be parsed to check it '
                    'against the accelerators: %s', exc)
        return []
    return [d.address for d in devices
            if d.assignable and specs.device_assignable({
                'vendor_id': d.vendor_id, 'product_id': d.product_id,
                'address': d.address, 'parent_addr': d.physfn})]


def compute_findings(conf, devices):
    """Findings on a compute host's *conf* (Nova's CONF) and the
    *devices* discovery found there."""
    return deployment.check_compute(
        conf.compute_driver or '',
        [t for t in (conf.devices.enabled_mdev_types or []) if t],
        [t for t in conf.accelerator.enabled_mdev_types if t],
        nova_pci_overlap(conf.pci.device_spec, devices))


def log_once(key, findings, logger=LOG):
    """Log *findings* at their level, once per *key* in this process."""
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    for finding in findings:
        if finding.level == deployment.ERROR:
            logger.error('Deployment check: %s', finding)
        elif finding.level == deployment.WARNING:
            logger.warning('Deployment check: %s', finding)
        else:
            logger.info('Deployment check: %s', finding)


def check_and_log(key, make_findings, logger=LOG):
    """``log_once(key, make_findings())``; a check that fails is logged,
    never raised: it must not stop a service from starting."""
    with _logged_lock:
        if key in _logged:
            return
    try:
        findings = make_findings()
    except Exception as exc:
        logger.warning('Deployment check (%s) could not run: %s', key, exc,
                       exc_info=True)
        return
    log_once(key, findings, logger)
