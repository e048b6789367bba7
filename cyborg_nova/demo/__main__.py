"""``python -m cyborg_nova.demo``: see :mod:`cyborg_nova.demo`."""

import argparse
import dataclasses
import sys
import time

from cyborg_nova import demo


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.demo',
        description='Boot one mixed workload in an embedded Nova cloud, '
                    'with cyborg-nova and with stock Nova PCI passthrough, '
                    'and compare where servers and their GPUs land.')
    parser.add_argument(
        '--cpu-allocation-ratio', type=float, default=None, metavar='R',
        help='cpu_allocation_ratio of every host (default: Nova\'s initial '
             '4.0); 1.0 makes CPUs, not GPUs, the scarce resource')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    demo.prepare_environment()
    demo.quiet_logging()
    started = time.monotonic()
    print('Booting the same workload twice in an embedded Nova 34 cloud '
          '(API, conductor,\nscheduler, Placement, fake libvirt computes)...',
          flush=True)
    # Nova is imported only now, with the environment its harness needs;
    # importing nova.test sets up oslo.log's terminal handler: undo that.
    from cyborg_nova.demo import report
    from cyborg_nova.demo import scenario
    demo.quiet_logging(fresh=False)
    fleet = scenario.FLEET
    if args.cpu_allocation_ratio is not None:
        fleet = dataclasses.replace(
            fleet, cpu_allocation_ratio=args.cpu_allocation_ratio)
    try:
        outcomes = scenario.run(fleet=fleet)
    except scenario.ScenarioFailed as exc:
        print('\nerror: the %s run did not complete: %s' % (
            exc.scenario.POLICY, exc.details.splitlines()[-1]),
            file=sys.stderr)
        print('The traceback and Nova\'s log: %s' % exc.log_path,
              file=sys.stderr)
        _append(exc.log_path, exc.details)
        return 1
    print()
    print(report.render(outcomes, fleet, scenario.WORKLOAD))
    print('\n(%.0f s; Nova logs in %s)' % (
        time.monotonic() - started, demo.log_dir()))
    return 0


def _append(path, text):
    try:
        with open(path, 'a') as f:
            f.write('\n--- the error ---\n%s\n' % text)
    except OSError:
        pass


if __name__ == '__main__':
    sys.exit(main())
