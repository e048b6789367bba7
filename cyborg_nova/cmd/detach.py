"""``cyborg-nova detach``: detach an accelerator from a server.

::

    cyborg-nova detach SERVER [DEVICE] [--config-file /etc/nova/nova.conf]

Runs on the server's compute host like ``cyborg-nova attach`` (see
:mod:`cyborg_nova.cmd.attach` for the host set-up).  DEVICE is a PCI
address (``0000:10:00.0`` or ``10:00.0``); without it, the server's only
detachable device.  Devices its flavor asks for stay (resize the server
instead).  The device is taken out of the guest, reset by its driver, and
only then given back to Placement.  Detaching a device the server does not
hold is a no-op with a message.

Exit status: 0 done or nothing to do, 1 the operation failed (and was
rolled back), 2 usage or configuration error.
"""

from cyborg_nova.cmd import attach as attach_cmd
from cyborg_nova import errors

PROG = 'cyborg-nova detach'


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'detach',
        help='detach an accelerator from a server on this host',
        description='Take an accelerator out of a server\'s guest (live and '
                    'persistent), reset it, forget it in the server\'s '
                    'device record and give its allocation back to '
                    'Placement.  Any failure is rolled back.')
    attach_cmd.add_common_arguments(parser)
    parser.add_argument(
        'device', metavar='DEVICE', nargs='?',
        help='PCI address of the device (default: the server\'s only '
             'detachable device)')
    parser.set_defaults(func=run)
    return parser


def run(args):
    host, status = attach_cmd.setup(args, PROG)
    if host is None:
        return status
    return execute(host, args)


def execute(host, args):
    """Detach on *host* (a :class:`~.attach.ComputeHost`)."""
    from cyborg_nova import attach as attach_mod
    try:
        instance = host.find_server(args.server)
        outcome = attach_mod.detach(host.driver, host.context, instance,
                                    address=args.device,
                                    report_client=host.report_client)
    except errors.CyborgNovaError as exc:
        attach_cmd.error(PROG, exc)
        return 1
    print(outcome.message)
    return 0
