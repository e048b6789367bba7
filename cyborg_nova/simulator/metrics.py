"""The simulator's figures, from plain records: pure, no Nova.

A :class:`Record` is one server request as one policy handled it.
"""

import dataclasses
import math
import statistics


@dataclasses.dataclass(frozen=True)
class Record:
    gpus: int                  # devices the flavor asks for
    accepted: bool
    load: float                # fraction of the fleet's GPUs in use on arrival
    time_us: float             # _get_sorted_hosts, microseconds
    aligned: bool = None       # GPU servers: vCPUs on their devices' node(s)
    best_topology: bool = None  # multi-GPU servers: best set the host had


@dataclasses.dataclass(frozen=True)
class HostUse:
    """One host after an event, as the stranding measure needs it."""

    free_gpus: int
    free_vcpus: float
    free_pcpus: int
    free_memory_mb: int
    plain_servers: int         # servers without accelerators on it


def _share(flags):
    flags = [f for f in flags if f is not None]
    return (sum(1 for f in flags if f) / len(flags)) if flags else None


def acceptance(records):
    """Share of accelerator requests placed (None: there were none)."""
    return _share([r.accepted for r in records if r.gpus])


def aligned_share(records):
    """Share of placed GPU servers NUMA-aligned with their devices."""
    return _share([r.aligned for r in records if r.gpus and r.accepted])


def best_topology_share(records):
    return _share([r.best_topology for r in records
                   if r.gpus > 1 and r.accepted])


def median_time_us(records):
    times = [r.time_us for r in records]
    return statistics.median(times) if times else None


def stranded_gpus(hosts, smallest):
    """Free GPUs on hosts that hold servers without accelerators and can no
    longer take *smallest* (a flavor-like object: vcpus, memory_mb,
    dedicated) for want of CPUs or memory."""
    if smallest is None:
        return 0
    total = 0
    for h in hosts:
        if not h.free_gpus or not h.plain_servers:
            continue
        cpus = h.free_pcpus if smallest.dedicated else h.free_vcpus
        if cpus < smallest.vcpus or h.free_memory_mb < smallest.memory_mb:
            total += h.free_gpus
    return total


def stddev(values):
    values = list(values)
    if not values:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def by_load(records, value, buckets=10):
    """``[(bucket centre, share, count)]`` of *value(record)* (True, False
    or None: left out) over GPU requests, bucketed by fleet load."""
    sums = [[0, 0] for _ in range(buckets)]
    for r in records:
        if not r.gpus:
            continue
        v = value(r)
        if v is None:
            continue
        i = min(buckets - 1, int(r.load * buckets))
        sums[i][0] += bool(v)
        sums[i][1] += 1
    return [((i + 0.5) / buckets, s / n, n)
            for i, (s, n) in enumerate(sums) if n]


@dataclasses.dataclass
class Summary:
    policy: str
    requests: int
    gpu_requests: int
    acceptance: float
    aligned: float
    best_topology: float
    stranded_end: int
    stranded_mean: float
    balance_stddev: float
    median_us: float


def summarize(policy, records, stranded_samples, gpus_used_per_gpu_host):
    samples = list(stranded_samples)
    return Summary(
        policy=policy, requests=len(records),
        gpu_requests=sum(1 for r in records if r.gpus),
        acceptance=acceptance(records), aligned=aligned_share(records),
        best_topology=best_topology_share(records),
        stranded_end=samples[-1] if samples else 0,
        stranded_mean=(sum(samples) / len(samples)) if samples else 0.0,
        balance_stddev=stddev(gpus_used_per_gpu_host),
        median_us=median_time_us(records))


def _pct(v):
    return 'n/a' if v is None else '%.1f%%' % (100.0 * v)


def format_table(summaries):
    rows = [
        ('GPU requests accepted', lambda s: _pct(s.acceptance)),
        ('GPU servers NUMA-aligned', lambda s: _pct(s.aligned)),
        ('multi-GPU servers on best topology',
         lambda s: _pct(s.best_topology)),
        ('GPUs stranded at end', lambda s: '%d' % s.stranded_end),
        ('GPUs stranded, mean', lambda s: '%.1f' % s.stranded_mean),
        ('stddev of GPUs used per GPU host',
         lambda s: 'n/a' if s.balance_stddev is None
         else '%.2f' % s.balance_stddev),
        ('median scheduling time per request',
         lambda s: 'n/a' if s.median_us is None
         else '%.0f us' % s.median_us),
        ('requests (GPU)', lambda s: '%d (%d)' % (s.requests,
                                                  s.gpu_requests)),
    ]
    head = [''] + [s.policy for s in summaries]
    body = [[label] + [f(s) for s in summaries] for label, f in rows]
    widths = [max(len(r[i]) for r in [head] + body)
              for i in range(len(head))]
    return '\n'.join('  '.join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [head] + body)
