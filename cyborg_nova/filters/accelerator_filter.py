"""Keep the hosts, and the Placement candidates on them, whose accelerators
can serve a flavor under its NUMA policy.

Placement already chose providers with free devices of the requested
classes; this filter adds what Placement cannot know:

* a candidate whose accelerator provider is not one of the host's current
  locality groups (stale, or not ours), or whose group has fewer healthy
  devices than it takes, is dropped;
* ``accelerator:numa_policy`` (default ``[accelerator] default_numa_policy``):
  ``required`` keeps only candidates whose devices' NUMA nodes can hold the
  guest (:func:`cyborg_nova.policy.numa_fit.can_fit`); ``preferred`` keeps
  every candidate but puts those first (the scheduler claims candidate 0);
  ``none`` keeps every healthy candidate in Placement's order;
* a guest with a NUMA topology (dedicated CPUs, or ``hw:numa_nodes``) is
  fitted onto host cells by Nova's own claim: when its first candidate is
  aligned, the host's ``limits['numa_topology']`` gets the markers of the
  devices' nodes, which Nova's claim honours like physnet affinity (see
  :mod:`cyborg_nova.policy.numa_affinity`);
* ``accelerator:link_policy``, for a request of several devices:
  ``strict`` keeps only candidates whose devices can come from one link
  island (one NVLink island or one PCIe switch: one provider whose group
  reports that many free devices in one island); ``best_effort`` keeps
  every candidate but puts those first, after NUMA alignment.

Order (the rule: the last filter to write ``limits['numa_topology']`` must
be one of ours, so that the markers describe the candidate claimed):

* with :class:`~cyborg_nova.filters.numa_topology_filter.
  AcceleratorAwareNUMATopologyFilter` in place of Nova's
  ``NUMATopologyFilter`` (the recommended set-up), enable this filter
  *before* it: this one is cheap and narrows hosts and candidates; that one
  then runs Nova's NUMA fitting on what is left, with the markers of each
  candidate's devices, and writes the limits with the markers of the
  candidate it keeps first (it recomputes them: markers this filter wrote
  are replaced, not lost);
* with Nova's ``NUMATopologyFilter``, enable this filter *after* it and
  after ``PciPassthroughFilter`` (ideally last): Nova's filter replaces
  ``limits['numa_topology']`` and narrows the candidates.

A flavor without accelerators passes at once, without reading the host.
"""

from oslo_log import log as logging

import nova.conf
from nova import objects
from nova.objects import fields
from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils

from cyborg_nova import conf as cn_conf
from cyborg_nova import deployment_check
from cyborg_nova import errors
from cyborg_nova.filters import candidates as cn_candidates
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import numa_fit
from cyborg_nova.policy import request
from cyborg_nova.policy import topology

LOG = logging.getLogger(__name__)

CONF = nova.conf.CONF
cn_conf.register_opts(CONF)

_PINNED = (fields.CPUAllocationPolicy.DEDICATED,
           fields.CPUAllocationPolicy.MIXED)
_CACHE_LIMIT = 10000


class RequestCache:
    """Parsed accelerator requests, keyed on the extra specs' content.

    The scheduler asks once per host with the same flavor: the last specs
    are compared by value (a dict comparison, well under a microsecond),
    then looked up by content among recent flavors, and parsed on a miss.
    A spec that does not parse is cached as its
    :class:`~cyborg_nova.errors.InvalidRequest`, returned, not raised.
    ``[accelerator] default_numa_policy`` is read when a flavor is parsed.
    """

    def __init__(self):
        self._last_specs = None
        self._last = None
        self._by_content = {}

    def get(self, extra_specs):
        if extra_specs == self._last_specs:
            return self._last
        key = frozenset(extra_specs.items())
        result = self._by_content.get(key)
        if result is None:
            try:
                result = request.parse_extra_specs(
                    extra_specs, CONF.accelerator.default_numa_policy)
            except errors.InvalidRequest as exc:
                result = exc
            if len(self._by_content) >= _CACHE_LIMIT:
                self._by_content.clear()
            self._by_content[key] = result
        self._last_specs = dict(extra_specs)
        self._last = result
        return result


class AcceleratorNUMAFilter(filters.BaseHostFilter,
                            filters.CandidateFilterMixin):
    """Healthy, known accelerator candidates, NUMA-aligned per policy."""

    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        self._requests = RequestCache()
        self._warned_spec = None
        self._providers = cn_candidates.ProviderMaps()
        self._cells = {}        # host uuid -> (NUMATopology, {node: cap})
        self._current = None    # _PerRequest of the request being filtered
        # Built when nova-scheduler starts: say what in its settings (and
        # Placement's, when readable here) works against accelerators.
        deployment_check.check_and_log(
            'scheduler', lambda: deployment_check.scheduler_findings(CONF))

    def _filter_one(self, host_state, spec_obj):
        # Ordinary flavors pass before Nova's rebuild check (which costs
        # more than this whole path); rebuilds pass either way, as Nova's
        # BaseHostFilter lets them, asked once per request, not per host.
        current = self._per_request(spec_obj)
        wanted = current.wanted
        if (isinstance(wanted, request.AcceleratorRequest) and
                not wanted.resources):
            return True
        if current.rebuild is None:
            current.rebuild = scheduler_utils.request_is_rebuild(spec_obj)
        if current.rebuild:
            return True
        return self._passes(host_state, spec_obj, wanted)

    def host_passes(self, host_state, spec_obj):
        return self._passes(host_state, spec_obj,
                            self._per_request(spec_obj).wanted)

    def _per_request(self, spec_obj):
        """The :class:`_PerRequest` of *spec_obj*: made again when the
        request spec or its flavor object changes (a new request), kept
        for all the hosts of one."""
        flavor = spec_obj.flavor
        current = self._current
        if (current is None or current.spec is not spec_obj or
                current.flavor is not flavor):
            current = self._current = _PerRequest(
                spec_obj, flavor, self._requests.get(flavor.extra_specs))
        return current

    def _passes(self, host_state, spec_obj, wanted):
        if isinstance(wanted, errors.InvalidRequest):
            return self._invalid(host_state, spec_obj, wanted)
        if not wanted.resources:
            return True

        stats = getattr(host_state, 'stats', None)
        summary = host_stats.decode(stats)
        if not summary.groups:
            LOG.debug('%(host)s, %(node)s fails accelerator request '
                      '%(res)s: the host reports no accelerators',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'res': wanted.resources})
            return False
        candidates = host_state.allocation_candidates
        if not candidates:
            LOG.debug('%(host)s, %(node)s fails accelerator request '
                      '%(res)s: no allocation candidate left',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'res': wanted.resources})
            return False

        providers = self._provider_map(host_state, stats, summary)
        policy = wanted.numa_policy
        guest = self._guest_of(spec_obj)
        cells = None if policy == numa_fit.NONE else self._cell_map(
            host_state)
        links = wanted.device_count > 1
        strict = links and wanted.link_policy == topology.STRICT
        aligned, unaligned, verdicts = [], [], {}
        unlinked = set()
        dropped, why = 0, None
        for candidate in candidates:
            nodes, problem = _device_nodes(candidate['allocations'],
                                           providers)
            if problem is None and links:
                problem = _link_problem(candidate['allocations'], providers)
                if problem is not None and not strict:
                    unlinked.add(id(candidate))
                    problem = None
            if problem is not None:
                dropped += 1
                why = why or problem
                continue
            if cells is None:
                unaligned.append((candidate, nodes))
                continue
            ok = verdicts.get(nodes)
            if ok is None:
                ok = verdicts[nodes] = guest.fits(cells, nodes)
            (aligned if ok else unaligned).append((candidate, nodes))

        if unlinked:
            # Stable: NUMA alignment first, then one link island.
            aligned.sort(key=lambda cn: id(cn[0]) in unlinked)
            unaligned.sort(key=lambda cn: id(cn[0]) in unlinked)
        kept = aligned if policy == numa_fit.REQUIRED else aligned + unaligned
        if not kept:
            if not LOG.isEnabledFor(logging.DEBUG):
                return False
            LOG.debug('%(host)s, %(node)s fails accelerator request '
                      '%(res)s (NUMA policy %(policy)s, link policy '
                      '%(link)s): none of %(total)d candidates is usable; '
                      '%(dropped)d use unknown or unhealthy accelerator '
                      'providers or no link island (%(why)s), '
                      '%(unaligned)d cannot hold %(guest)s on the NUMA '
                      'nodes of their devices (%(verdicts)s)',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'res': wanted.resources, 'policy': policy,
                       'link': wanted.link_policy,
                       'total': len(candidates), 'dropped': dropped,
                       'why': _Lazy(_why_text, why),
                       'unaligned': len(unaligned), 'guest': guest,
                       'verdicts': _Lazy(_verdicts_text, verdicts)})
            return False

        host_state.allocation_candidates = [c for c, _ in kept]
        first_aligned = bool(aligned) and kept[0] is aligned[0]
        nodes = kept[0][1]
        if guest.numa:
            _set_limits(host_state, spec_obj,
                        nodes if first_aligned else (),
                        self._per_request(spec_obj).limits)
        if not LOG.isEnabledFor(logging.DEBUG):
            return True
        LOG.debug('%(host)s, %(node)s passes accelerator request %(res)s '
                  '(NUMA policy %(policy)s, link policy %(link)s): '
                  '%(kept)d of %(total)d candidates kept, %(aligned)d '
                  'NUMA-aligned, %(unlinked)d not in one link island, '
                  '%(dropped)d dropped (%(why)s); the first has its devices '
                  'on NUMA nodes %(nodes)s: %(state)s',
                  {'host': host_state.host, 'node': host_state.nodename,
                   'res': wanted.resources, 'policy': policy,
                   'link': wanted.link_policy, 'unlinked': len(unlinked),
                   'kept': len(kept), 'total': len(candidates),
                   'aligned': len(aligned), 'dropped': dropped,
                   'why': _Lazy(_why_text, why),
                   'nodes': _Lazy(_nodes_text, nodes),
                   'state': _Lazy(_state_text, first_aligned,
                                  cells is not None, guest.numa, guest)})
        return True

    def _invalid(self, host_state, spec_obj, exc):
        if spec_obj is not self._warned_spec:
            self._warned_spec = spec_obj
            LOG.warning('Flavor %(flavor)s cannot be scheduled: %(error)s',
                        {'flavor': spec_obj.flavor.name, 'error': exc})
        LOG.debug('%(host)s, %(node)s fails: invalid accelerator request '
                  '(%(error)s)', {'host': host_state.host,
                                  'node': host_state.nodename, 'error': exc})
        return False

    def _guest_of(self, spec_obj):
        """The guest's :class:`_Guest`, kept while the request's NUMA
        topology object stays the same (all hosts of one request)."""
        topology = (spec_obj.numa_topology if 'numa_topology' in spec_obj
                    else None)
        current = self._per_request(spec_obj)
        if current.guest is None or current.topology is not topology:
            current.topology = topology
            current.guest = _Guest(current.flavor, topology)
        return current.guest

    def _provider_map(self, host_state, stats, summary):
        """``{provider uuid: GroupSummary}`` of the host, per stats text."""
        return self._providers.get(host_state, stats, summary)

    def _cell_map(self, host_state):
        """``{node: numa_fit.CellCapacity}`` of the host's NUMA topology,
        recomputed when the host's topology object changes."""
        topology = host_state.numa_topology
        cached = self._cells.get(host_state.uuid)
        if cached is not None and cached[0] is topology:
            return cached[1]
        cells = {}
        if topology is not None:
            for cell in topology.cells:
                cells[cell.id] = numa_fit.CellCapacity(
                    cpu_count=len(cell.cpuset),
                    free_cpu_count=len(cell.free_pcpus),
                    free_memory_mb=max(0, cell.avail_memory))
        if len(self._cells) >= _CACHE_LIMIT:
            self._cells.clear()
        self._cells[host_state.uuid] = (topology, cells)
        return cells


class _PerRequest:
    """What depends on the request alone, worked out once for all its
    hosts: the flavor's accelerator request (or the InvalidRequest it
    makes), whether it is a rebuild (asked when first needed), the guest's
    size for NUMA fitting, and the NUMA limits objects made for its hosts,
    by content (hosts with the same ratios and markers share one: nothing
    writes into limits, and Nova's NUMATopologyFilter shares them too)."""

    __slots__ = ('spec', 'flavor', 'wanted', 'rebuild', 'topology', 'guest',
                 'limits')

    def __init__(self, spec, flavor, wanted):
        self.spec = spec
        self.flavor = flavor
        self.wanted = wanted
        self.rebuild = None
        self.topology = None
        self.guest = None
        self.limits = {}


class _Guest:
    """The guest's size as NUMA fitting sees it."""

    __slots__ = ('vcpus', 'memory_mb', 'dedicated', 'numa', 'cells')

    def __init__(self, flavor, topology):
        self.numa = topology is not None
        self.cells = len(topology.cells) if self.numa else 0
        self.dedicated = self.numa and any(
            c.cpu_policy in _PINNED for c in topology.cells)
        self.vcpus = (sum(len(c.pcpuset) for c in topology.cells)
                      if self.dedicated else flavor.vcpus)
        self.memory_mb = flavor.memory_mb

    def fits(self, cells, nodes):
        # Nova's claim puts each guest cell on its own host cell: the
        # markers of more device nodes than guest cells cannot all be met.
        if self.numa and len(nodes) > self.cells:
            return False
        return numa_fit.can_fit(cells, nodes, self.vcpus, self.memory_mb,
                                dedicated=self.dedicated,
                                policy=numa_fit.REQUIRED)

    def __str__(self):
        return '%d %s vCPUs and %d MiB' % (
            self.vcpus, 'dedicated' if self.dedicated else 'shared',
            self.memory_mb)


_device_nodes = cn_candidates.device_nodes


def _link_problem(allocations, providers):
    """Why a candidate's devices cannot be shown to lie in one link island
    (a ``(format, args)`` pair), or None when they can: one provider whose
    group reports at least that many free devices in one island."""
    taken = []
    for rp_uuid, allocation in allocations.items():
        group = providers.get(rp_uuid)
        if group is not None:
            count = allocation['resources'].get(group.resource_class, 0)
            if count:
                taken.append((group, count))
    if len(taken) > 1:
        return ('devices from %d providers (%s) cannot be shown to share a '
                'link island; ask for them in one request group',
                (len(taken), ', '.join(sorted(g.suffix for g, _ in taken))))
    for group, count in taken:
        island = group.largest_free_island
        if count > 1 and (island is None or island < count):
            return ('group %s has %s free device(s) in one link island, '
                    '%d asked', (group.suffix, 'an unknown number of'
                                 if island is None else island, count))
    return None


def _set_limits(host_state, spec_obj, nodes, cache=None):
    """Give the host's NUMA limits the markers of *nodes* (none: remove
    markers a previous request left), as a new object or, with *cache*
    (a dict kept for one request), one made for an earlier host with the
    same content; never by changing the object the host had."""
    old = host_state.limits.get('numa_topology')
    metadata = None
    if old is not None and 'network_metadata' in old:
        metadata = old.network_metadata
    elif old is None and 'network_metadata' in spec_obj:
        metadata = spec_obj.network_metadata
    physnets = set()
    tunneled = False
    if metadata is not None:
        if 'physnets' in metadata:
            physnets = {p for p in metadata.physnets
                        if not numa_affinity.is_marker(p)}
        if 'tunneled' in metadata:
            tunneled = metadata.tunneled
    markers = {numa_affinity.marker(n) for n in nodes}
    if not markers and (metadata is None or 'physnets' not in metadata or
                        physnets == metadata.physnets):
        return      # nothing to add, nothing stale to remove
    cpu_ratio = ram_ratio = None
    if old is not None:
        if 'cpu_allocation_ratio' in old:
            cpu_ratio = old.cpu_allocation_ratio
        if 'ram_allocation_ratio' in old:
            ram_ratio = old.ram_allocation_ratio
    if cpu_ratio is None:
        cpu_ratio = host_state.cpu_allocation_ratio or 1.0
    if ram_ratio is None:
        ram_ratio = host_state.ram_allocation_ratio or 1.0
    key = (cpu_ratio, ram_ratio, frozenset(physnets | markers), tunneled)
    limits = cache.get(key) if cache is not None else None
    if limits is None:
        limits = objects.NUMATopologyLimits(
            cpu_allocation_ratio=cpu_ratio,
            ram_allocation_ratio=ram_ratio,
            network_metadata=objects.NetworkMetadata(
                physnets=set(key[2]), tunneled=tunneled))
        if cache is not None:
            cache[key] = limits
    host_state.limits['numa_topology'] = limits


class _Lazy:
    """A log argument computed only when the message is emitted."""

    __slots__ = ('func', 'args')

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __str__(self):
        return self.func(*self.args)


def _nodes_text(nodes):
    return ','.join('unknown' if n is None else str(n)
                    for n in sorted(nodes, key=lambda n: (n is None, n or 0)))


def _why_text(why):
    return 'none' if why is None else 'first: ' + why[0] % why[1]


def _verdicts_text(verdicts):
    return '; '.join('nodes %s: %s' % (_nodes_text(nodes),
                                       'room' if ok else 'no room')
                     for nodes, ok in verdicts.items()) or 'none'


def _state_text(first_aligned, asked, numa_guest, guest):
    if not asked:
        return 'alignment not asked (policy none)'
    if not first_aligned:
        return 'not aligned, no room there for %s' % guest
    if numa_guest:
        return ('aligned, room for %s; NUMA limits carry the nodes\' '
                'markers' % guest)
    return 'aligned, room for %s' % guest
