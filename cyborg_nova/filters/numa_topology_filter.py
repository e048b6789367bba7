"""Nova's ``NUMATopologyFilter``, made cheap and aware of accelerators.

:class:`AcceleratorAwareNUMATopologyFilter` replaces Nova's
``NUMATopologyFilter`` in ``enabled_filters``: for every request without
accelerators it passes the same hosts and keeps the same allocation
candidates (``cyborg_nova/tests/unit/test_numa_topology_filter.py`` runs
both over a table of requests and host states), and sets the same
``limits['numa_topology']``.  What differs is the cost and the markers:

* a request without a NUMA topology (shared CPUs, no ``hw:numa_nodes``)
  passes at once.  Nova's filter deep-copies the whole ``RequestSpec`` for
  every host first, then finds nothing to check: its CPU-policy check can
  only fail for ``hw:cpu_policy=dedicated`` (flavor or image), and Nova
  gives every such request a NUMA topology;
* the request is never copied.  ``numa_fit_instance_to_host`` writes into
  the guest's ``InstanceNUMATopology`` (cell ids, CPU pinning, the page size
  it chose), and those writes carry over from one candidate's fit to the
  next; so when Nova's fitting runs, it runs on a copy of just that object,
  one per host, as Nova's own copy of the request spec is one per host;
* the common request, one guest NUMA cell with dedicated CPUs under the
  default thread policy, no ``hw:mem_page_size`` other than a fixed size,
  no emulator-thread isolation and no PCI request, is answered without
  Nova's fitting, from counts read off the host's cells (each read once per
  topology object): Nova's
  fitting of such a guest depends on nothing it writes, and succeeds on a
  host cell exactly when the cell has the memory (of its smallest page size,
  or of the fixed one), the guest's CPUs among its dedicated CPUs, that many
  of them unpinned, that many free in its SMT sibling sets (the ``prefer``
  packing falls back to single threads), and the network metadata's
  physnets and tunnel allow that cell;
* otherwise, when every guest cell has dedicated CPUs, a host with fewer
  NUMA cells holding the smallest guest cell's dedicated CPUs unpinned than
  the guest has cells is rejected before any fitting: Nova's fitting checks
  that count on every cell it places a guest cell on;
* for a flavor with accelerators (``resources:PGPU=1``...) under
  ``accelerator:numa_policy`` ``required`` or ``preferred``, each candidate
  is fitted with the NUMA node markers of its accelerator providers'
  nodes (:mod:`cyborg_nova.policy.numa_affinity`) added to the network
  metadata of the limits, so Nova's fitting itself places the guest's cells
  on its devices' nodes.  ``required`` keeps only the candidates that fit
  so; ``preferred`` keeps those, and when there is none, the candidates
  that fit without markers (Nova's answer).  The host's
  ``limits['numa_topology']`` then carries the markers of the candidate
  kept first, which the scheduler claims, so the compute's claim lands the
  guest there too.

Markers already in ``limits['numa_topology']`` are not carried over: an
earlier filter wrote them for its own first candidate (or an earlier
instance of the same request did), which this filter may drop.  The
markers written are the ones Nova's fitting has just accepted for the
first candidate kept, recomputed from the same provider map.

Order: enable it after ``AcceleratorNUMAFilter`` (that filter is cheap and
narrows hosts and candidates, so the NUMA fitting runs only for what
survives), e.g. ``enabled_filters = ComputeFilter,...,
AcceleratorNUMAFilter,AcceleratorAwareNUMATopologyFilter``.  Either order
gives correct limits: before it, ``AcceleratorNUMAFilter`` rewrites the
markers for its own first candidate.  Do not enable Nova's
``NUMATopologyFilter`` as well: it would do the same work again, and after
this filter it would drop the markers.
"""

from oslo_log import log as logging
from oslo_utils import units

from nova import objects
from nova.objects import fields
from nova.scheduler.filters import numa_topology_filter
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware

from cyborg_nova.filters import accelerator_filter
from cyborg_nova.filters import candidates as cn_candidates
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import numa_fit
from cyborg_nova.policy import request

LOG = logging.getLogger(__name__)

_PINNED = (fields.CPUAllocationPolicy.DEDICATED,
           fields.CPUAllocationPolicy.MIXED)
_PACKED = (None, fields.CPUThreadAllocationPolicy.PREFER)
_CACHE_LIMIT = 100000
_NO_MARKERS = frozenset()
#: What reading a host cell the fast way may raise: a cell field not set
#: (NotImplementedError from the object), no sibling sets... Nova's own
#: fitting then decides (and fails, if it does, as in Nova's filter).
_FAST_PATH_ERRORS = (NotImplementedError, AttributeError, KeyError,
                     TypeError, ValueError)


class AcceleratorAwareNUMATopologyFilter(
        numa_topology_filter.NUMATopologyFilter):
    """Nova's NUMA topology filter without its per-host copy of the
    request, with accelerators' NUMA nodes in the fitting."""

    RUN_ON_REBUILD = False

    def __init__(self):
        super().__init__()
        self._requests = accelerator_filter.RequestCache()
        self._providers = cn_candidates.ProviderMaps()
        self._hosts = {}        # host uuid -> (NUMATopology, _Host or None)
        self._guest = (None, None, None, None)

    def _filter_one(self, host_state, spec_obj):
        topology = spec_obj.numa_topology
        if topology is None:
            # Nova's filter passes every host, rebuild or not.
            return True
        guest = self._guest_of(spec_obj, topology)
        if guest.rebuild:
            return True
        return self._passes(host_state, spec_obj, guest)

    def host_passes(self, host_state, spec_obj):
        topology = spec_obj.numa_topology
        if topology is None:
            return True
        return self._passes(host_state, spec_obj,
                            self._guest_of(spec_obj, topology))

    def _passes(self, host_state, spec_obj, guest):
        if guest.needs_threads and not self._satisfies_cpu_policy(
                host_state, guest.extra_specs, guest.image_props):
            return False
        if not guest.cell_count:
            return True     # a topology without cells is no topology
        host_topology = host_state.numa_topology
        host = None
        if guest.one_cell is not None and host_topology is not None:
            host = self._host_of(host_state, host_topology)
        if not (host.cells if host is not None else host_topology):
            LOG.debug('%(host)s, %(node)s fails NUMA topology requirements. '
                      'No host NUMA topology while the instance specified '
                      'one.', {'host': host_state.host,
                               'node': host_state.nodename},
                      instance_uuid=spec_obj.instance_uuid)
            return False

        all_candidates = host_state.allocation_candidates
        kept = markers = None
        if host is not None:
            try:
                kept, markers = self._decide(host_state, host_topology, host,
                                             guest, all_candidates)
            except _FAST_PATH_ERRORS as exc:
                LOG.debug('%(host)s, %(node)s: NUMA cells not described by '
                          'counts (%(error)r); fitting with Nova\'s code.',
                          {'host': host_state.host,
                           'node': host_state.nodename, 'error': exc})
                self._hosts[host_state.uuid] = (host_topology, None)
                host = None
        if host is None:
            if guest.min_pcpus:
                room = _cells_with_pcpus(host_topology, guest.min_pcpus)
                if room is not None and room < guest.cell_count:
                    LOG.debug('%(host)s, %(node)s fails NUMA topology '
                              'requirements: %(room)d of its NUMA cells '
                              'have %(need)d unpinned dedicated CPUs, the '
                              'instance needs %(cells)d such cells.',
                              {'host': host_state.host,
                               'node': host_state.nodename, 'room': room,
                               'need': guest.min_pcpus,
                               'cells': guest.cell_count},
                              instance_uuid=spec_obj.instance_uuid)
                    # As Nova's filter leaves it, having fitted every
                    # candidate.
                    host_state.allocation_candidates = []
                    return False
            kept, markers = self._decide(host_state, host_topology, None,
                                         guest, all_candidates)
        host_state.allocation_candidates = kept or []
        if not kept:
            LOG.debug('%(host)s, %(node)s fails NUMA topology requirements. '
                      'The instance does not fit on this host%(where)s.',
                      {'host': host_state.host, 'node': host_state.nodename,
                       'where': '' if guest.policy is None else
                       ' (accelerator:numa_policy=%s: not on the NUMA nodes '
                       'of its devices either)' % guest.policy},
                      instance_uuid=spec_obj.instance_uuid)
            return False
        host_state.limits['numa_topology'] = guest.limits(host_state,
                                                          markers)
        return True

    def _decide(self, host_state, host_topology, host, guest,
                all_candidates):
        """The candidates kept and the markers of the first: fitted on
        their devices' nodes when the flavor asks for accelerators under a
        NUMA policy, else (or when none fits, under ``preferred``) as
        Nova's filter fits them.  *host* is the host's :class:`_Host`, or
        None to run Nova's fitting."""
        kept = markers = None
        if guest.policy is not None:
            kept, markers = self._fit_on_device_nodes(
                host_state, host_topology, host, guest, all_candidates)
        if not kept and guest.policy != numa_fit.REQUIRED:
            # Nova's answer.
            markers = _NO_MARKERS
            if host is not None:
                kept = (list(all_candidates) if host.fits(
                    guest, guest.physnets, guest.has_metadata) else [])
            else:
                limits = guest.limits(host_state, markers)
                kept = self._nova_fit(host_state, host_topology, guest,
                                      [(c, limits) for c in all_candidates])
        return kept, markers

    def _fit_on_device_nodes(self, host_state, host_topology, host, guest,
                             all_candidates):
        """The candidates that fit with their devices' node markers, and
        the markers of the first; ``([], None)`` when none does."""
        providers = self._providers.get(host_state)
        if providers is None:
            return [], None
        kept, first = [], None
        if host is not None:
            verdicts = {}
            for candidate in all_candidates:
                markers = _markers(candidate, providers)
                if markers is None:
                    continue
                ok = verdicts.get(markers)
                if ok is None:
                    ok = verdicts[markers] = host.fits(
                        guest, guest.physnets | markers,
                        guest.has_metadata or bool(markers))
                if ok:
                    if first is None:
                        first = markers
                    kept.append(candidate)
            return kept, first
        pairs, by_candidate = [], {}
        for candidate in all_candidates:
            markers = _markers(candidate, providers)
            if markers is not None:
                by_candidate[id(candidate)] = markers
                pairs.append((candidate,
                              guest.limits(host_state, markers)))
        kept = self._nova_fit(host_state, host_topology, guest, pairs)
        return kept, by_candidate[id(kept[0])] if kept else None

    def _nova_fit(self, host_state, host_topology, guest, pairs):
        """The candidates Nova's fitting accepts, each with its limits, in
        one host's sequence of fits (on one copy of the guest topology, as
        Nova's filter fits on one copy of the request per host)."""
        topology = guest.topology.obj_clone()
        kept = []
        for candidate, limits in pairs:
            if hardware.numa_fit_instance_to_host(
                    host_topology, topology, limits=limits,
                    pci_requests=guest.pci_requests,
                    pci_stats=host_state.pci_stats,
                    provider_mapping=candidate['mappings']):
                kept.append(candidate)
        return kept

    def _guest_of(self, spec_obj, topology):
        """The request's :class:`_Guest`, kept while the request, its flavor
        and its NUMA topology objects stay the same (all hosts of one
        request)."""
        flavor = spec_obj.flavor
        last_spec, last_flavor, last_topology, guest = self._guest
        if (spec_obj is not last_spec or flavor is not last_flavor or
                topology is not last_topology):
            guest = _Guest(spec_obj, self._requests.get(flavor.extra_specs))
            self._guest = (spec_obj, flavor, topology, guest)
        return guest

    def _host_of(self, host_state, topology):
        """The host's :class:`_Host`, kept while the host's topology object
        stays the same (as ``AcceleratorNUMAFilter`` keeps its cells'
        capacities: Nova's scheduler replaces a host's topology object when
        the host changes); None when the counts cannot stand for Nova's
        fitting (found so once)."""
        cached = self._hosts.get(host_state.uuid)
        if cached is not None and cached[0] is topology:
            return cached[1]
        host = _Host.of(topology)
        if len(self._hosts) >= _CACHE_LIMIT:
            self._hosts.clear()
        self._hosts[host_state.uuid] = (topology, host)
        return host


def _markers(candidate, providers, _known={}):
    """The node markers of a candidate's accelerator providers: a frozenset
    (empty when it takes no accelerator), or None when the nodes are not
    all known."""
    nodes, problem = cn_candidates.device_nodes(candidate['allocations'],
                                                providers)
    if problem is not None:
        return None
    markers = _known.get(nodes)
    if markers is None:
        markers = None if None in nodes else frozenset(
            numa_affinity.marker(n) for n in nodes)
        if len(_known) < 1024:
            _known[nodes] = markers
    return markers


def _cells_with_pcpus(topology, count):
    """How many host cells have *count* unpinned dedicated CPUs; None when
    the cells' ids are not unique (Nova's fitting caches per cell id, and
    the count proves nothing then)."""
    cells = topology.cells
    if len({c.id for c in cells}) != len(cells):
        return None
    return sum(1 for c in cells if c.avail_pcpus >= count)


class _Guest:
    """What the filter reads of one request, once per request."""

    def __init__(self, spec_obj, wanted):
        self.topology = topology = spec_obj.numa_topology
        self.rebuild = scheduler_utils.request_is_rebuild(spec_obj)
        self.extra_specs = spec_obj.flavor.extra_specs
        self.image_props = spec_obj.image.properties
        cpu_policy = (self.extra_specs.get('hw:cpu_policy'),
                      self.image_props.get('hw_cpu_policy'))
        thread_policy = (self.extra_specs.get('hw:cpu_thread_policy'),
                         self.image_props.get('hw_cpu_thread_policy'))
        # Nova's _satisfies_cpu_policy can only fail for these.
        self.needs_threads = (
            fields.CPUAllocationPolicy.DEDICATED in cpu_policy and
            fields.CPUThreadAllocationPolicy.REQUIRE in thread_policy)
        pci_requests = spec_obj.pci_requests
        if pci_requests:
            # Nova's PCI checks load unset fields of the requests (their
            # defaults): a copy per request keeps the spec as it was.
            pci_requests = pci_requests.requests
            if pci_requests:
                pci_requests = [r.obj_clone() for r in pci_requests]
        self.pci_requests = pci_requests
        metadata = (spec_obj.network_metadata
                    if 'network_metadata' in spec_obj else None)
        self.network_metadata = metadata
        self.has_metadata = metadata is not None
        self.physnets = frozenset(
            metadata.physnets if metadata is not None and
            'physnets' in metadata else ())
        self.tunneled = bool(metadata is not None and
                             'tunneled' in metadata and metadata.tunneled)
        self.cell_count = len(topology.cells)
        self.min_pcpus = 0
        if topology.cells and all(_policy(c) in _PINNED
                                  for c in topology.cells):
            self.min_pcpus = min(len(c.pcpuset) for c in topology.cells)
        self.one_cell = _OneCell.of(topology, pci_requests)
        self.policy = None
        if (isinstance(wanted, request.AcceleratorRequest) and
                wanted.resources and
                wanted.numa_policy in (numa_fit.REQUIRED,
                                       numa_fit.PREFERRED)):
            self.policy = wanted.numa_policy
        self._limits = {}

    def limits(self, host_state, markers):
        """Nova's limits for the host, with *markers* added to the
        network metadata; one object per ratios and markers, shared by the
        hosts of the request (nothing writes into limits)."""
        cpu = host_state.cpu_allocation_ratio
        ram = host_state.ram_allocation_ratio
        key = (cpu, ram, markers)
        limits = self._limits.get(key)
        if limits is None:
            limits = objects.NUMATopologyLimits(cpu_allocation_ratio=cpu,
                                                ram_allocation_ratio=ram)
            if markers:
                limits.network_metadata = objects.NetworkMetadata(
                    physnets=set(self.physnets | markers),
                    tunneled=self.tunneled)
            elif self.network_metadata is not None:
                limits.network_metadata = self.network_metadata.obj_clone()
            self._limits[key] = limits
        return limits


def _policy(cell):
    return cell.cpu_policy if 'cpu_policy' in cell else None


class _OneCell:
    """A guest whose fitting Nova's decides from counts: one cell,
    dedicated CPUs, thread policy ``prefer`` (or unset), a fixed page size
    or none, no emulator-thread isolation, no PCI request."""

    __slots__ = ('pcpus', 'memory', 'memory_kb', 'pagesize')

    def __init__(self, pcpus, memory, pagesize):
        self.pcpus = pcpus
        self.memory = memory
        self.memory_kb = memory * units.Ki
        self.pagesize = pagesize

    @classmethod
    def of(cls, topology, pci_requests):
        if pci_requests or len(topology.cells) != 1:
            return None
        if topology.emulator_threads_isolated:
            return None
        cell = topology.cells[0]
        if (_policy(cell) != fields.CPUAllocationPolicy.DEDICATED or
                'cpu_thread_policy' not in cell or
                cell.cpu_thread_policy not in _PACKED or
                'pcpuset' not in cell or not cell.pcpuset or
                'memory' not in cell):
            return None
        pagesize = cell.pagesize if 'pagesize' in cell else None
        if pagesize is not None and pagesize < 0:
            # small, large, any: Nova's fitting writes the size it chose
            # into the guest, and the next candidate's fit reads it.
            return None
        return cls(len(cell.pcpuset), cell.memory, pagesize or None)

    def fits(self, cell):
        """Nova's ``_numa_fit_instance_cell`` for this guest on *cell* (a
        :class:`_Cell`): the conditions are Nova's, checked in an order that
        reads least of the cell first."""
        pcpus, free = cell.cpus()
        if self.pcpus > pcpus or self.pcpus > len(free):
            return False
        if self.pagesize:
            size = self.pagesize
        else:
            size = cell.smallest_page()
            if size is None:
                return cell.cell.avail_memory >= self.memory and (
                    cell.sibling_room(free, self.pcpus))
        # NUMACell.can_fit_pagesize(size, memory_kb, use_free=True)
        free_kb = cell.free_kb(size)
        if (free_kb is None or self.memory_kb > free_kb or
                self.memory_kb % size):
            return False
        return cell.sibling_room(free, self.pcpus)


class _Unanswerable(ValueError):
    """A host cell the counts cannot describe: Nova's fitting decides."""


class _Cell:
    """What Nova's fitting of a :class:`_OneCell` guest reads of a host
    cell, read when first needed, and only what is needed."""

    __slots__ = ('cell', '_network', '_cpus', '_pages', '_free_kb',
                 '_siblings', '_sibling_free')

    def __init__(self, cell):
        self.cell = cell
        self._network = self._cpus = self._pages = self._siblings = None
        self._sibling_free = None
        self._free_kb = {}         # page size (or 'smallest') -> KiB

    def network(self):
        """``(has network metadata, physnets, tunneled)``."""
        if self._network is None:
            try:
                # Not ``in``: the object's field check costs more than
                # the read (a NUMACell does not load unset fields).
                metadata = self.cell.network_metadata
            except NotImplementedError:
                self._network = (False, frozenset(), False)
            else:
                self._network = (True, frozenset(metadata.physnets),
                                 metadata.tunneled)
        return self._network

    def cpus(self):
        """``(dedicated CPU count, unpinned dedicated CPUs)``."""
        if self._cpus is None:
            pcpus = self.cell.pcpuset
            self._cpus = (len(pcpus), pcpus - self.cell.pinned_cpus)
        return self._cpus

    def _page_sizes(self):
        """``{page size: the first NUMAPagesTopology of that size}`` (Nova
        reads the first one)."""
        if self._pages is None:
            pages = {}
            for page in self.cell.mempages:
                pages.setdefault(page.size_kb, page)
            self._pages = pages
        return self._pages

    def smallest_page(self):
        """The smallest page size (KiB), None when the cell reports none
        (Nova's ``_get_smallest_pagesize``)."""
        try:
            return self._free_kb['smallest']
        except KeyError:
            sizes = self._page_sizes()
            smallest = self._free_kb['smallest'] = (
                min(sizes) if sizes else None)
            return smallest

    def free_kb(self, size):
        """Free memory in pages of *size* KiB, None when the cell has no
        such pages (``NUMAPagesTopology.free_kb`` of the first)."""
        try:
            return self._free_kb[size]
        except KeyError:
            pass
        page = self._page_sizes().get(size)
        free_kb = None
        if page is not None:
            try:
                reserved = page.reserved
            except NotImplementedError:
                reserved = 0        # NUMAPagesTopology.free counts it so
            free_kb = (page.total - page.used - reserved) * size
        self._free_kb[size] = free_kb
        return free_kb

    def siblings(self):
        """The cell's SMT sibling sets.

        :raises _Unanswerable: there are none (Nova's packing fails on
            their max()).
        """
        if self._siblings is None:
            siblings = self.cell.siblings
            if not siblings:
                raise _Unanswerable('no sibling sets')
            self._siblings = siblings
        return self._siblings

    def sibling_room(self, free, count):
        """Whether Nova's ``prefer`` packing finds *count* of the unpinned
        dedicated CPUs *free*: the sum over the SMT sibling sets of their
        unpinned CPUs reaches *count*."""
        if self._sibling_free is None:
            self._sibling_free = sum(len(s & free) for s in self.siblings())
        return count <= self._sibling_free


class _Host:
    """A host's cells as :class:`_Cell`, and the physnets and tunnel
    affinity any of them declares."""

    __slots__ = ('cells', '_network', '_fitting', '_checked')

    def __init__(self, cells):
        self.cells = cells
        self._network = None
        self._fitting = (None, None)   # (guest, verdict per cell), at once
        self._checked = False

    @classmethod
    def of(cls, topology):
        return cls(tuple(_Cell(c) for c in topology.cells))

    def network(self):
        """``(physnets, tunneled)`` declared by any cell."""
        if self._network is None:
            physnets, tunneled = set(), False
            for cell in self.cells:
                has, cell_physnets, cell_tunneled = cell.network()
                if has:
                    physnets |= cell_physnets
                    tunneled = tunneled or cell_tunneled
            self._network = (frozenset(physnets), tunneled)
        return self._network

    def fits(self, guest, physnets, has_metadata):
        """``numa_fit_instance_to_host`` succeeds for *guest* (a
        :class:`_Guest` with a :class:`_OneCell`) with limits whose network
        metadata asks for *physnets* and the guest's tunnel (*has_metadata*:
        the limits have network metadata at all).

        :raises _Unanswerable: only Nova's fitting can tell.
        """
        if not self._checked:
            # Nova's fitting may reach any cell: one it cannot fit on must
            # go to Nova's code, whatever cell would answer first here.
            for cell in self.cells:
                cell.siblings()
            self._checked = True
        tunneled = guest.tunneled
        last, verdicts = self._fitting
        if last is not guest:
            verdicts = [None] * len(self.cells)
            self._fitting = (guest, verdicts)
        for i, cell in enumerate(self.cells):
            # Nova's conditions, all of them: network metadata first, as
            # it is what tells candidates apart.
            if has_metadata and not self._network_ok(cell, physnets,
                                                     tunneled):
                continue
            ok = verdicts[i]
            if ok is None:
                ok = verdicts[i] = guest.one_cell.fits(cell)
            if ok:
                return True
        return False

    def _network_ok(self, cell, physnets, tunneled):
        """Nova's ``_numa_cells_support_network_metadata`` for the guest on
        *cell* alone."""
        has, cell_physnets, cell_tunneled = cell.network()
        if physnets:
            left = physnets - cell_physnets if has else physnets
            if left and left & self.network()[0]:
                return False
        if tunneled:
            if has and cell_tunneled:
                return True
            if self.network()[1]:
                return False
        return True
