"""``cyborg-nova COMMAND ...``: parse the command line and dispatch.

Each subcommand is a module of :mod:`cyborg_nova.cmd` (any but this one)
with ``add_parser(subparsers)``, which registers its arguments and sets
``func``, and ``run(args)``, which returns the exit status: adding a
subcommand is adding a module.  One that fails to import is reported on
standard error and left out; the others still work.

Subcommand modules are imported only after the warnings filter is in
place: importing Nova (for its PCI and CPU-list parsers) otherwise prints
eventlet and oslo deprecation noise over the tool's own output.
"""

import argparse
import importlib
import logging
import pkgutil
import sys
import warnings

PACKAGE = 'cyborg_nova.cmd'
#: Subcommands listed first in ``--help``, in this order; others follow.
ORDER = ('discover', 'check', 'attach', 'detach', 'simulate')

LOG_FORMAT = '%(levelname)s %(name)s: %(message)s'


def quiet_import_warnings():
    """Hide deprecation warnings raised while importing Nova, unless the
    user asked for warnings with ``-W`` or ``PYTHONWARNINGS``."""
    if sys.warnoptions:
        return
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    warnings.filterwarnings('ignore', category=PendingDeprecationWarning)
    # eventlet.EventletDeprecationWarning derives from Warning, and naming
    # the class would import eventlet before the filter is in place.
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')


def add_config_file_argument(parser, help_text):
    """``--config-file FILE`` (repeatable, into ``config_files``), as
    every subcommand reading an oslo.config file takes it."""
    parser.add_argument(
        '--config-file', metavar='FILE', action='append', default=[],
        dest='config_files', help=help_text)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='cyborg-nova',
        description='Accelerators on an OpenStack Nova compute host: what '
                    'is there, and whether it may be handed to a guest.')
    parser.add_argument(
        '--debug', action='store_true',
        help='log at DEBUG level (default: WARNING) on standard error')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for name in subcommand_names():
        try:
            module = importlib.import_module('%s.%s' % (PACKAGE, name))
        except Exception as exc:     # one broken subcommand, not the tool
            print('cyborg-nova: the %s command is unavailable: %s: %s'
                  % (name, type(exc).__name__, exc), file=sys.stderr)
            continue
        if hasattr(module, 'add_parser'):
            module.add_parser(subparsers)
    return parser


def subcommand_names():
    """Modules of :mod:`cyborg_nova.cmd` but this one, :data:`ORDER`
    first."""
    package = importlib.import_module(PACKAGE)
    names = [m.name for m in pkgutil.iter_modules(package.__path__)
             if m.name != 'main' and not m.name.startswith('_')]
    return sorted(names, key=lambda n: (
        ORDER.index(n) if n in ORDER else len(ORDER), n))


class _DuplicateFilter(logging.Filter):
    """Drops the warnings of the loggers whose news a subcommand reports
    itself (one line per failed driver), unless --debug asks for all."""

    def __init__(self, names):
        super().__init__()
        self.names = tuple(names)

    def filter(self, record):
        return not (record.levelno < logging.ERROR and
                    record.name in self.names)


def _start_logging(debug, quiet_loggers=()):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if not debug:
        handler.addFilter(_DuplicateFilter(quiet_loggers))
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)

    def stop():
        root.removeHandler(handler)
        root.setLevel(saved_level)
    return stop


def main(argv=None):
    """Run ``cyborg-nova`` with *argv* (default: ``sys.argv[1:]``) and
    return its exit status: 0 on success, 1 when the command failed, 2 on
    a usage or configuration error."""
    with warnings.catch_warnings():
        quiet_import_warnings()
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:       # --help, or a usage error
            return exc.code
        stop_logging = _start_logging(
            args.debug, getattr(args, 'quiet_loggers', ()))
        try:
            return args.func(args)
        finally:
            stop_logging()


if __name__ == '__main__':
    sys.exit(main())
