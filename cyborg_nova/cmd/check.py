"""``cyborg-nova check``: are Nova and Placement set up the way cyborg-nova
needs?  Like ``nova-status upgrade check``: one line per finding, exit
status 0 (all fine), 1 (a warning) or 2 (an error).

It reads ``nova.conf`` (``--config-file``, else oslo.config's usual places
for project ``nova``), checks the scheduler settings, ``placement.conf``
(``--placement-config-file``, else ``[accelerator] placement_config_file``)
and the compute settings against the accelerators discovery finds on this
host.  What each finding means is in :mod:`cyborg_nova.policy.deployment`.
"""

import sys

from oslo_config import cfg

from cyborg_nova.cmd import main
from cyborg_nova import conf as conf_mod
from cyborg_nova import deployment_check
from cyborg_nova import discovery
from cyborg_nova.policy import deployment
from cyborg_nova.policy import inventory

PROG = 'cyborg-nova check'
ROLES = ('scheduler', 'placement', 'compute')
#: Discovery's own warnings (a driver degraded, NVML missing) are not what
#: this command reports; ``cyborg-nova discover`` does.
QUIET_LOGGERS = ('cyborg_nova.discovery', 'cyborg_nova.drivers.nvidia',
                 'cyborg_nova.drivers.mdev', 'cyborg_nova.drivers.pci')


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'check',
        help='check the Nova and Placement settings cyborg-nova relies on',
        description='Check nova.conf (scheduler and compute settings) and '
                    'placement.conf for what works against accelerators; '
                    'exit status 0 when all is fine, 1 on a warning, 2 on '
                    'an error, as nova-status does.')
    main.add_config_file_argument(
        parser, 'nova.conf to check; may be repeated (default: where Nova '
                'looks, such as /etc/nova/nova.conf)')
    parser.add_argument(
        '--placement-config-file', metavar='FILE',
        help='placement.conf to check (default: [accelerator] '
             'placement_config_file, /etc/placement/placement.conf)')
    parser.add_argument(
        '--only', choices=ROLES, action='append', dest='roles',
        help='check only this part; may be repeated (default: all)')
    parser.set_defaults(func=run, quiet_loggers=QUIET_LOGGERS)
    return parser


def load_nova_config(config_files):
    """Nova's CONF, with our options, read from *config_files* (or Nova's
    default files)."""
    import nova.conf
    conf = nova.conf.CONF
    conf_mod.register_opts(conf)
    conf(args=[], project='nova', prog='nova-compute',
         default_config_files=list(config_files) or None, use_env=False)
    return conf


def findings_for(conf, roles, placement_file=None):
    """``[(part, [Finding])]`` for the *roles* asked.  With ``compute``,
    this host's devices are discovered, and the scheduler part also
    checks ``max_placement_results`` against the locality groups a host
    like this one reports."""
    devices = groups = None
    if 'compute' in roles:
        devices = discovery.discover(discovery.make_context(conf)).devices
        groups = len(inventory.locality_groups(devices))
    parts = []
    if 'scheduler' in roles:
        parts.append(('scheduler (nova.conf)',
                      deployment_check.nova_scheduler_findings(conf,
                                                               groups)))
    if 'placement' in roles:
        path = placement_file or conf.accelerator.placement_config_file
        parts.append(('placement (%s)' % path,
                      deployment_check.placement_findings(path)))
    if devices is not None:
        parts.append(('compute (nova.conf, %d accelerators found)'
                      % len(devices),
                      deployment_check.compute_findings(conf, devices)))
    return parts


def run(args):
    try:
        conf = load_nova_config(args.config_files)
    except (cfg.Error, ValueError) as exc:
        print('%s: configuration error: %s' % (PROG, exc), file=sys.stderr)
        return 2
    everything = []
    for part, findings in findings_for(conf, args.roles or ROLES,
                                       args.placement_config_file):
        print('%s:' % part)
        for finding in findings:
            print('  %-7s %s: %s' % (finding.level.upper(), finding.setting,
                                     finding.message))
        everything += findings
    status = deployment.exit_status(everything)
    print('result: %s' % ('all fine', 'warning', 'error')[status])
    return status
