"""The ``cyborg-nova`` command line tool.

:mod:`.main` parses the command line and dispatches to one module per
subcommand (``discover``, ``attach``, ``detach``, later ``simulate``); each
such module has ``add_parser(subparsers)`` and ``run(args) -> exit status``
and is found by :mod:`.main` without being listed anywhere.
"""
