"""The demo's fleet, workload, results and tables, as plain data.

Nothing here imports Nova: :mod:`cyborg_nova.demo.scenario` fills
:class:`Placed` records from Nova's harness and this module judges and
prints them.
"""

import dataclasses
import textwrap

ACTIVE = 'ACTIVE'
REFUSED = 'refused'      # NoValidHost
FAILED = 'failed'        # any other error


@dataclasses.dataclass(frozen=True)
class Host:
    name: str
    #: The NUMA node of each GPU, in PCI address order.
    gpu_nodes: tuple = ()

    @property
    def gpus(self):
        return len(self.gpu_nodes)

    def gpu_addresses(self):
        """``{pci address: numa node}``: GPU *i* sits on bus ``0x10*(i+1)``,
        as :func:`cyborg_nova.tests.fixtures.hosts.gpu_host` lays it out."""
        return {gpu_address(i): node for i, node in enumerate(self.gpu_nodes)}


def gpu_address(index):
    return '0000:%02x:00.0' % (0x10 * (index + 1))


@dataclasses.dataclass(frozen=True)
class Fleet:
    hosts: tuple
    nodes: int = 2
    cpus_per_node: int = 4
    #: ``[compute] cpu_shared_set`` / ``cpu_dedicated_set`` of every host.
    shared_cpus: frozenset = frozenset({0, 1, 4, 5})
    dedicated_cpus: frozenset = frozenset({2, 3, 6, 7})
    #: ``cpu_allocation_ratio`` (Nova's initial default).
    cpu_allocation_ratio: float = 4.0

    def node_of(self, cpu):
        return cpu // self.cpus_per_node

    @property
    def all_nodes(self):
        return frozenset(range(self.nodes))

    @property
    def gpus(self):
        return sum(h.gpus for h in self.hosts)

    def host(self, name):
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


@dataclasses.dataclass(frozen=True)
class Request:
    name: str
    gpus: int = 0
    dedicated: bool = False
    vcpus: int = 1
    memory_mb: int = 2048

    @property
    def kind(self):
        if not self.gpus:
            return 'ordinary'
        return 'GPU, %s CPUs' % ('dedicated' if self.dedicated else 'shared')


@dataclasses.dataclass(frozen=True)
class Placed:
    """What became of one request."""
    request: Request
    outcome: str                      # ACTIVE, REFUSED or FAILED
    host: str = None
    #: ``((pci address, numa node), ...)`` passed through to the guest.
    devices: tuple = ()
    #: Host CPUs the vCPUs may run on; None: unbound (any host CPU).
    cpus: frozenset = None
    pinned: bool = False
    #: Host NUMA nodes the guest memory is bound to; None: unbound.
    memory_nodes: frozenset = None
    fault: str = ''
    #: Free GPUs in the fleet just before this request was made.
    free_gpus_before: int = 0
    #: For a server without GPUs: whether a host without GPUs had room
    #: for it (in Placement) when it was requested.
    cpu_host_had_room: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One policy's run of the workload."""
    policy: str
    description: str
    placed: tuple


# -- judging ----------------------------------------------------------------

def aligned(placed, fleet):
    """True when a GPU server's vCPUs and memory are all on its GPUs' NUMA
    nodes; None for servers without GPUs or not placed."""
    if placed.outcome != ACTIVE or not placed.request.gpus:
        return None
    device_nodes = {node for _, node in placed.devices}
    if not device_nodes or None in device_nodes:
        return False
    cpu_nodes = (fleet.all_nodes if placed.cpus is None
                 else {fleet.node_of(c) for c in placed.cpus})
    memory_nodes = (fleet.all_nodes if placed.memory_nodes is None
                    else placed.memory_nodes)
    return cpu_nodes <= device_nodes and memory_nodes <= device_nodes


@dataclasses.dataclass(frozen=True)
class Summary:
    requested: int
    placed: int
    gpu_placed: int
    gpu_aligned: int
    ordinary: int
    ordinary_on_gpu_hosts: int
    #: Of those, how many landed there while the CPU-only host had room.
    ordinary_on_gpu_hosts_needlessly: int
    gpu_refused_while_free: int


def summarize(outcome, fleet):
    gpu_hosts = {h.name for h in fleet.hosts if h.gpus}
    active = [p for p in outcome.placed if p.outcome == ACTIVE]
    gpu = [p for p in active if p.request.gpus]
    ordinary = [p for p in outcome.placed if not p.request.gpus]
    on_gpu = [p for p in ordinary
              if p.outcome == ACTIVE and p.host in gpu_hosts]
    return Summary(
        requested=len(outcome.placed),
        placed=len(active),
        gpu_placed=len(gpu),
        gpu_aligned=sum(1 for p in gpu if aligned(p, fleet)),
        ordinary=len(ordinary),
        ordinary_on_gpu_hosts=len(on_gpu),
        ordinary_on_gpu_hosts_needlessly=sum(
            1 for p in on_gpu if p.cpu_host_had_room),
        gpu_refused_while_free=sum(
            1 for p in outcome.placed
            if p.request.gpus and p.outcome == REFUSED
            and p.free_gpus_before >= p.request.gpus))


# -- printing ---------------------------------------------------------------

def cpu_ranges(cpus):
    """``{0, 1, 4, 5}`` -> ``'0-1,4-5'``."""
    out = []
    for cpu in sorted(cpus):
        if out and out[-1][1] == cpu - 1:
            out[-1][1] = cpu
        else:
            out.append([cpu, cpu])
    return ','.join(str(a) if a == b else '%d-%d' % (a, b) for a, b in out)


def _row(placed, fleet):
    req = placed.request
    if placed.outcome != ACTIVE:
        why = 'REFUSED: No valid host' if placed.outcome == REFUSED \
            else 'FAILED: %s' % (placed.fault or 'error')
        return [req.name, why]
    devices = ' '.join('%s (%s)' % (a, '?' if n is None else n)
                       for a, n in placed.devices) or '-'
    if placed.cpus is None:
        cpus = 'any host CPU'
    else:
        cpus = '%s %s (%s)' % (
            cpu_ranges(placed.cpus), 'pinned' if placed.pinned else 'shared',
            ','.join(str(n) for n in sorted({fleet.node_of(c)
                                             for c in placed.cpus})))
    memory = 'any' if placed.memory_nodes is None \
        else 'node %s' % ','.join(str(n) for n in sorted(placed.memory_nodes))
    verdict = aligned(placed, fleet)
    verdict = '-' if verdict is None else ('yes' if verdict else 'NO')
    return [req.name, placed.host, devices, cpus, memory, verdict]


HEADER = ['SERVER', 'HOST', 'GPU (NUMA node)', 'GUEST CPUs (NUMA node)',
          'MEMORY', 'ALIGNED']


def _columns(rows, indent=''):
    """Rows as aligned text; a short row (a refused server) spans the
    columns after its first."""
    full = [r for r in rows if len(r) == len(rows[0])]
    widths = [max(len(r[i]) for r in full) for i in range(len(rows[0]))]
    return [indent + '  '.join(c.ljust(w) for c, w in zip(r, widths))
            .rstrip() for r in rows]


def describe_fleet(fleet):
    lines = textwrap.wrap(
        'Fleet: %d hosts, each %d NUMA nodes x %d CPUs (CPUs %s shared, '
        'allocation ratio %g; %s dedicated):' % (
            len(fleet.hosts), fleet.nodes, fleet.cpus_per_node,
            cpu_ranges(fleet.shared_cpus), fleet.cpu_allocation_ratio,
            cpu_ranges(fleet.dedicated_cpus)), 78, subsequent_indent='  ')
    for host in fleet.hosts:
        if host.gpus:
            gpus = ', '.join('%s on node %d' % item for item in
                             sorted(host.gpu_addresses().items()))
            lines.append('  %-6s %d GPUs: %s' % (host.name, host.gpus, gpus))
        else:
            lines.append('  %-6s no GPU' % host.name)
    return lines


def _family(request):
    return request.name.rsplit('-', 1)[0] + '-*'


def describe_workload(requests):
    lines = textwrap.wrap(
        'Workload, booted in this order: %s' % ' '.join(
            r.name for r in requests), 78, subsequent_indent='  ',
        break_on_hyphens=False)
    sizes = {}
    for req in requests:
        spec = '%d vCPU%s' % (req.vcpus, '' if req.vcpus == 1 else 's')
        if req.gpus:
            spec += ' + %d GPU, %s CPUs' % (
                req.gpus, 'dedicated' if req.dedicated else 'shared')
        else:
            spec += ', no GPU'
        sizes.setdefault(_family(req), spec)
    return lines + textwrap.wrap(
        '; '.join('%s: %s' % kv for kv in sizes.items()), 78,
        initial_indent='  ', subsequent_indent='  ', break_on_hyphens=False)


def render_outcome(outcome, fleet):
    lines = ['== %s' % outcome.policy]
    lines += textwrap.wrap(outcome.description, 78, initial_indent='   ',
                           subsequent_indent='   ')
    rows = [HEADER] + [_row(p, fleet) for p in outcome.placed]
    return lines + _columns(rows, indent='   ')


def render_summary(outcomes, fleet):
    summaries = [summarize(o, fleet) for o in outcomes]
    gpu_requested = sum(1 for p in outcomes[0].placed if p.request.gpus)
    rows = [
        ['== Summary'] + [o.policy for o in outcomes],
        ['servers placed'] + ['%d of %d' % (s.placed, s.requested)
                              for s in summaries],
        ['GPU servers NUMA-aligned'] + [
            '%d of %d' % (s.gpu_aligned, gpu_requested) for s in summaries],
        ['ordinary servers on GPU hosts'] + [
            '%d of %d' % (s.ordinary_on_gpu_hosts, s.ordinary)
            for s in summaries],
        ['  while the CPU-only host had room'] + [
            str(s.ordinary_on_gpu_hosts_needlessly) for s in summaries],
        ['GPU servers refused while GPUs were free'] + [
            str(s.gpu_refused_while_free) for s in summaries],
    ]
    return _columns(rows)


def render(outcomes, fleet, requests):
    lines = describe_fleet(fleet) + describe_workload(requests)
    for outcome in outcomes:
        lines += [''] + render_outcome(outcome, fleet)
    lines += [''] + render_summary(outcomes, fleet)
    return '\n'.join(lines)
