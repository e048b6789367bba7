"""Command-line options the benchmarks share."""


def add_run_options(parser, default_runs, quick_runs, unit='runs',
                    log_note=''):
    """``--quick``, ``--runs`` and ``--log-level``."""
    parser.add_argument('--quick', action='store_true',
                        help='%d %s instead of %d'
                        % (quick_runs, unit, default_runs))
    parser.add_argument('--runs', type=int,
                        help='%s (default %d; quick %d)'
                        % (unit, default_runs, quick_runs))
    parser.add_argument('--log-level', default='ERROR',
                        help='level of our loggers, on standard error '
                             '(default ERROR%s)' % log_note)


def parse_run_options(parser, argv, default_runs, quick_runs):
    """Parse *argv*; ``args.runs`` is always set and at least 1."""
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = quick_runs if args.quick else default_runs
    if args.runs < 1:
        parser.error('--runs must be at least 1')
    return args
