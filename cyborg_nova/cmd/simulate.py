"""``cyborg-nova simulate``: replay a request trace over a described fleet
through the real Nova scheduler, cyborg-nova's pipeline and Nova's own."""

import logging
import sys
import time


def add_parser(subparsers):
    p = subparsers.add_parser(
        'simulate', help='replay a request trace over a fleet through the '
        'real Nova scheduler, ours against Nova\'s PCI passthrough',
        description='Replay a request trace (servers arriving and leaving) '
        'over a described fleet through Nova\'s filters and weighers, '
        'in process; report acceptance, NUMA alignment, stranding, '
        'balance and scheduling time per policy.')
    p.add_argument('--fleet', required=True, metavar='FLEET.yaml')
    p.add_argument('--trace', required=True, metavar='TRACE.yaml')
    p.add_argument('--policy', choices=('cyborg', 'nova', 'both'),
                   default='both')
    p.add_argument('--out', metavar='DIR',
                   help='write acceptance.png and alignment.png here')
    p.set_defaults(func=run)


def run(args):
    from cyborg_nova.simulator import fleet as sim_fleet
    from cyborg_nova.simulator import trace as sim_trace
    from cyborg_nova.simulator import yamlfile

    try:
        hosts = sim_fleet.load(args.fleet)
        flavors, events = sim_trace.load(args.trace)
    except yamlfile.SpecError as exc:
        print('cyborg-nova simulate: %s' % exc, file=sys.stderr)
        return 2

    if not getattr(args, 'debug', False):
        # Nova warns about eventlet on import and its scheduler logs a
        # line per host at INFO: none of it is news for a simulation.
        for name in ('nova', 'cyborg_nova'):
            logging.getLogger(name).setLevel(logging.ERROR)

    from cyborg_nova.simulator import engine
    from cyborg_nova.simulator import metrics
    from cyborg_nova.simulator import plots

    engine.configure()
    gpu_flavors = [f for f in flavors.values() if f.gpus]
    smallest = min(gpu_flavors, key=lambda f: (f.vcpus, f.memory_mb),
                   default=None)
    policies = engine.POLICIES if args.policy == 'both' else (args.policy,)
    sims = []
    t0 = time.perf_counter()
    for policy in policies:
        sims.append(engine.run(policy, hosts, events, smallest))
    elapsed = time.perf_counter() - t0
    print('Fleet %s: %d hosts, %d GPUs; trace %s: %d events' % (
        args.fleet, len(hosts), sum(h.gpus for h in hosts), args.trace,
        len(events)))
    if smallest is not None:
        print('Stranded: free GPUs on hosts with servers without GPUs that '
              'can no longer take %s (%d vCPUs, %d MiB)' % (
                  smallest.name, smallest.vcpus, smallest.memory_mb))
    print()
    print(metrics.format_table([s.summary() for s in sims]))
    print()
    print('Simulated in %.1f s' % elapsed)
    if args.out:
        try:
            for path in plots.write(sims, args.out):
                print('wrote %s' % path)
        except ImportError:
            print(plots.MISSING, file=sys.stderr)
    return 0
