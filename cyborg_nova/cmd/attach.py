"""``cyborg-nova attach``: attach accelerators to a running server.

::

    cyborg-nova attach SERVER --resources PGPU=1 [--trait TRAIT]...
                       [--numa-policy required|preferred|none]
                       [--config-file /etc/nova/nova.conf]

Runs on the server's compute host, with that host's ``nova.conf``:
Placement credentials from ``[placement]`` (Nova's own report client),
the libvirt URI from ``[libvirt]``, the message bus for the conductor
(instances are read and saved through it, as nova-compute does).
``--resources`` is how many devices of each class the server should hold
on this host afterwards, counting those it has, so the same command run
twice attaches once.  See :mod:`cyborg_nova.attach` for what happens and
how failures are rolled back.

:class:`ComputeHost` is what both ``attach`` and ``detach`` need of the
host: the compute driver, built by Nova's own loader from ``[DEFAULT]
compute_driver`` exactly as nova-compute builds it (it must be
``cyborg_nova.AcceleratedLibvirtDriver``), but not started (no
``init_host``): only its libvirt connection, its device drivers and its
root provider lookup are used.

Exit status: 0 done or nothing to do, 1 the operation failed (and was
rolled back), 2 usage or configuration error.
"""

import sys

from cyborg_nova.cmd import main
from cyborg_nova import errors
from cyborg_nova.policy import deployment
from cyborg_nova.policy import numa_fit

PROG = 'cyborg-nova attach'
DRIVER = deployment.COMPUTE_DRIVER


class SetupError(errors.CyborgNovaError):
    """The command cannot run on this host as configured."""


class ComputeHost(object):
    """The pieces of this compute host the commands use."""

    def __init__(self, driver, context, host, report_client=None):
        self.driver = driver
        self.context = context
        self.host = host
        self.report_client = report_client

    @classmethod
    def from_config(cls, config_files=()):
        """Read nova.conf like nova-compute and build its driver."""
        from nova.conductor import rpcapi as conductor_rpcapi
        from nova import config as nova_config
        from nova import context as nova_context
        from nova.db.main import api as main_db_api
        from nova import objects
        from nova.objects import base as objects_base
        from nova.scheduler.client import report
        from nova.virt import driver as virt_driver

        from cyborg_nova.virt_hooks import driver as cn_driver

        argv = ['cyborg-nova']
        for path in config_files:
            argv += ['--config-file', path]
        try:
            nova_config.parse_args(argv, configure_db=False)
        except Exception as exc:
            raise SetupError('cannot read the Nova configuration (%s): %s'
                             % (', '.join(config_files) or 'nova.conf found '
                                'in the usual places', exc))
        conf = nova_config.CONF
        if conf.compute_driver != DRIVER:
            raise SetupError(
                'compute_driver is %r in nova.conf; this command works on '
                'hosts whose compute_driver is %s' % (conf.compute_driver,
                                                      DRIVER))
        objects.register_all()
        # Like nova-compute: no database, objects through the conductor.
        main_db_api.DISABLE_DB_ACCESS = True
        objects_base.NovaObject.indirection_api = (
            conductor_rpcapi.ConductorAPI())
        try:
            driver = virt_driver.load_compute_driver(None)
        except SystemExit:
            raise SetupError('Nova could not load the compute driver %s; '
                             'is cyborg-nova installed (not editable) in '
                             'Nova\'s environment?' % DRIVER)
        if not isinstance(driver, cn_driver.AcceleratedLibvirtDriver):
            raise SetupError('the compute driver is %s, not %s'
                             % (type(driver).__name__, DRIVER))
        try:
            client = report.report_client_singleton()
        except Exception as exc:
            raise SetupError('cannot reach Placement with the [placement] '
                             'section of nova.conf: %s' % exc)
        return cls(driver, nova_context.get_admin_context(), conf.host,
                   report_client=client)

    def find_server(self, server):
        """The instance named by UUID, or by a name unique on this host."""
        from nova import exception as nova_exception
        from nova import objects
        from oslo_utils import uuidutils

        attrs = ['flavor', 'numa_topology', 'system_metadata']
        if uuidutils.is_uuid_like(server):
            try:
                return objects.Instance.get_by_uuid(
                    self.context, server, expected_attrs=attrs)
            except nova_exception.InstanceNotFound:
                raise errors.InvalidRequest('no server %s' % server)
        found = [i for i in objects.InstanceList.get_by_host(
                     self.context, self.host, expected_attrs=attrs)
                 if i.display_name == server]
        if not found:
            raise errors.InvalidRequest(
                'no server named %r on this host (%s): give its UUID, or run '
                'the command on its compute host' % (server, self.host))
        if len(found) > 1:
            raise errors.InvalidRequest(
                '%d servers are named %r on this host (%s): give the UUID of '
                'one' % (len(found), server,
                         ', '.join(sorted(i.uuid for i in found))))
        return found[0]


def add_common_arguments(parser):
    parser.add_argument(
        'server', metavar='SERVER',
        help='the server: its UUID, or its name when that is unique on '
             'this host')
    main.add_config_file_argument(
        parser, 'nova.conf of this compute host; may be repeated (default: '
                'where Nova looks, /etc/nova/nova.conf)')


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'attach',
        help='attach accelerators to a server running on this host',
        description='Pick free devices on this host that fit the request '
                    'and the server\'s NUMA placement, add them to the '
                    'server\'s Placement allocation, attach them to its '
                    'guest (live and persistent) and record them so that '
                    'they survive hard reboot, host reboot and rebuild.  '
                    'Any failure is rolled back.')
    add_common_arguments(parser)
    parser.add_argument(
        '--resources', required=True, metavar='RC=N[,RC=N]',
        help='how many devices of each resource class the server should '
             'hold on this host afterwards, counting those it has: PGPU=1 '
             'gives a server without GPU one; PGPU=2 adds a second')
    parser.add_argument(
        '--trait', metavar='TRAIT', action='append', default=[],
        dest='traits',
        help='a trait the devices\' Placement provider must have, such as '
             'CUSTOM_PCI_PRODUCT_10DE_2330; may be repeated')
    parser.add_argument(
        '--numa-policy', choices=numa_fit.POLICIES,
        help='required: only devices the server\'s vCPUs and memory can be '
             'NUMA-local to; preferred: those first; none: any.  Default: '
             'the flavor\'s accelerator:numa_policy, else [accelerator] '
             'default_numa_policy')
    parser.set_defaults(func=run)
    return parser


def error(prog, message):
    print('%s: %s' % (prog, message), file=sys.stderr)


def setup(args, prog):
    """``(ComputeHost, None)`` or ``(None, exit status)``."""
    try:
        return ComputeHost.from_config(args.config_files), None
    except SetupError as exc:
        error(prog, exc)
        return None, 2


def run(args):
    from cyborg_nova import attach as attach_mod
    try:
        resources = attach_mod.parse_resources(args.resources)
    except errors.InvalidRequest as exc:
        error(PROG, exc)
        return 2
    host, status = setup(args, PROG)
    if host is None:
        return status
    return execute(host, args, resources)


def execute(host, args, resources):
    """Attach on *host* (a :class:`ComputeHost`); print what was done."""
    from cyborg_nova import attach as attach_mod
    try:
        instance = host.find_server(args.server)
        outcome = attach_mod.attach(
            host.driver, host.context, instance, resources,
            traits=[t.strip().upper() for t in args.traits],
            numa_policy=args.numa_policy, report_client=host.report_client)
    except errors.CyborgNovaError as exc:
        error(PROG, exc)
        return 1
    print(outcome.message)
    return 0
