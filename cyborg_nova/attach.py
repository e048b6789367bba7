"""Attach and detach accelerators on a running server, volume-attach style.

Nova has no API for this (``attachPciDevice`` does not exist), so it runs on
the server's compute host, under the same per-instance lock nova-compute's
accelerator work takes (:func:`~.instance_record.instance_lock`):

* :func:`attach` picks free devices on the host that fit the request
  (resource class, traits, NUMA policy: :mod:`~.policy.numa_fit` over the
  host's locality groups), adds them to the server's Placement allocation
  (PUT ``/allocations/{server}`` with ``consumer_generation``, so a
  concurrent change wins or loses cleanly; retried once after re-reading),
  attaches them to the guest (persistent, and live when it runs), re-places
  the vCPUs of a shared-CPU guest on the devices' node (live where libvirt
  can; the driver rebuilds the XML NUMA-local at every hard reboot anyway)
  and records them on the instance (:mod:`~.virt_hooks.instance_record`),
  which is what keeps them over hard reboot, host reboot and rebuild;
* :func:`detach` does the reverse, resetting the device (its driver's
  ``uninstall``) before anyone may get it again, and returning the
  allocation last;
* :func:`reconcile` makes the record and Placement agree with the guest
  after an interrupted attach or detach (a process killed between two
  steps); both commands run it first, so the next attach or detach heals.

``resources`` says how many devices of each class the server should hold
on its host *after* the call (devices it already has, from its flavor or
an earlier attach, count when they have the traits asked), so running the
same attach twice attaches once.

Any failure after something changed rolls every step back in reverse order
(allocation released, device out of the guest and reset, record as it
was); a step that cannot be undone is named in the error.

The first part of the module is pure (plain data in, plain data out): the
choice of devices and the reconcile plan.  The rest adapts it to the
driver, libvirt and Placement.
"""

import collections
import dataclasses
import logging
import time
from typing import Mapping, Optional

from nova.compute import vm_states
from nova import conf as nova_conf
from nova.scheduler.client import report
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import guest as libvirt_guest

from cyborg_nova import device as device_mod
from cyborg_nova import errors
from cyborg_nova.policy import device_pick
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_fit
from cyborg_nova.policy import request as request_mod
from cyborg_nova.virt_hooks import guest_devices
from cyborg_nova.virt_hooks import instance_record

LOG = logging.getLogger(__name__)

#: Placement microversion of ``consumer_generation`` on allocations.
PLACEMENT_VERSION = '1.28'

#: ``system_metadata`` key (plus the node name) naming the devices a detach
#: is taking out of the guest, until it has recorded that they are out:
#: what a detach interrupted before the reset leaves for :func:`reconcile`
#: to reset.
DETACHING_PREFIX = 'cyborg_nova_detaching:'


class AttachError(errors.CyborgNovaError):
    """An attach or detach could not be done; nothing was left changed
    unless the message says so."""


class AllocationConflict(AttachError):
    """Placement refused the server's new allocation twice."""


class RollbackIncomplete(AttachError):
    """A failure was rolled back only in part; ``leftovers`` say what."""

    def __init__(self, message, leftovers=()):
        self.leftovers = tuple(leftovers)
        super().__init__(message)


# -- pure part ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One locality group of the host, as an attach sees it.

    ``free``: addresses of its free devices; ``traits``: its provider's
    traits.
    """

    provider: str
    name: str
    resource_class: str
    numa_node: Optional[int]
    traits: frozenset = frozenset()
    free: tuple = ()


@dataclasses.dataclass(frozen=True)
class GuestShape:
    """What the NUMA fitting needs to know of the server.

    ``cells``: the host's nodes for shared-CPU guests (``{node:
    NumaCell}``); ``nodes``: the host nodes of a guest with its own NUMA
    topology (dedicated CPUs, ``hw:numa_*``), None for a floating guest;
    ``devices``: ``{address: node}`` of the devices it holds already.
    """

    vcpus: int
    memory_mb: int
    cells: Mapping = dataclasses.field(default_factory=dict)
    nodes: Optional[frozenset] = None
    devices: Mapping = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Choice:
    candidate: Candidate
    addresses: tuple
    aligned: bool
    explanation: str


def parse_resources(text):
    """``'PGPU=1'`` or ``'PGPU=1,FPGA=2'`` -> ``{'PGPU': 1, ...}``.

    :raises InvalidRequest: naming the bad part.
    """
    resources = {}
    for part in (p.strip() for p in (text or '').split(',')):
        if not part:
            continue
        name, sep, count = part.partition('=')
        name = name.strip()
        if not sep:
            raise errors.InvalidRequest(
                '%r is not RESOURCE_CLASS=COUNT: write for example PGPU=1'
                % part)
        resources[name] = resources.get(name, 0) + _count(name, count)
    return check_resources(resources)


def check_resources(resources):
    """Check ``{resource class: count}``; return it without zero counts.

    :raises InvalidRequest: a class that is not an accelerator, a count
        that is not a whole number, or nothing asked.
    """
    checked = {}
    for name, count in sorted((resources or {}).items()):
        if not request_mod.is_accelerator_class(name):
            raise errors.InvalidRequest(
                '%s is not an accelerator resource class: use one of %s or '
                'a %s* class' % (name,
                                 ', '.join(request_mod.ACCELERATOR_CLASSES),
                                 request_mod.CUSTOM_ACCELERATOR_PREFIX))
        count = _count(name, count)
        if count:
            checked[name] = count
    if not checked:
        raise errors.InvalidRequest(
            'no accelerator asked: give at least one count above 0, such '
            'as PGPU=1')
    return checked


def _count(name, value):
    try:
        count = int(str(value).strip())
    except ValueError:
        count = -1
    if count < 0:
        raise errors.InvalidRequest(
            '%s=%s is not valid: the count must be a whole number, 0 or more'
            % (name, str(value).strip()))
    return count


def normalize_address(text):
    """``'10:00.0'`` or ``'0000:10:00.0'`` -> ``'0000:10:00.0'``."""
    text = (text or '').strip().lower()
    if text.count(':') == 1:
        text = '0000:' + text
    return text


def choose(candidates, resource_class, count, traits=(),
           policy=numa_fit.PREFERRED, guest=None, taken=()):
    """*count* devices of *resource_class* from one locality group.

    A group qualifies when its provider has every trait of *traits*, it has
    *count* free devices not in *taken*, and the guest with those devices
    fits *policy* (``required``: NUMA-local, else the group is refused with
    the reason).  Among those, a group the guest is NUMA-local to wins, then
    the group with the fewest free devices (bigger groups stay whole for
    bigger requests), then the name.

    :returns: a :class:`Choice`.
    :raises NoFreeDevice: no group qualifies; the message says why for
        each group of that class.
    """
    if policy not in numa_fit.POLICIES:
        raise errors.InvalidRequest('NUMA policy %r is not one of %s'
                                    % (policy, ', '.join(numa_fit.POLICIES)))
    traits = frozenset(traits)
    taken = set(taken)
    reasons, fitting = [], []
    for cand in sorted(candidates, key=lambda c: c.name):
        if cand.resource_class != resource_class:
            continue
        missing = sorted(traits - cand.traits)
        if missing:
            reasons.append('%s lacks trait(s) %s' % (cand.name,
                                                     ', '.join(missing)))
            continue
        free = [a for a in cand.free if a not in taken]
        if len(free) < count:
            reasons.append('%s has %d free device(s)' % (cand.name,
                                                         len(free)))
            continue
        picked = tuple(free[:count])
        try:
            aligned, why = _fit(guest, cand.numa_node, picked, policy)
        except errors.NumaFitError as exc:
            reasons.append('%s: %s' % (cand.name, exc))
            continue
        fitting.append(((not aligned, len(free), cand.name),
                        Choice(cand, picked, aligned, why)))
    if not fitting:
        raise errors.NoFreeDevice(
            'no locality group of this host can give %d %s%s (NUMA policy '
            '%s): %s. Free a device, ask for other traits or another NUMA '
            'policy, or move the server to a host with free devices'
            % (count, resource_class,
               ' with trait(s) %s' % ', '.join(sorted(traits))
               if traits else '', policy,
               '; '.join(reasons) or 'the host has no %s' % resource_class))
    return min(fitting, key=lambda f: f[0])[1]


def _fit(guest, node, picked, policy):
    """``(aligned, explanation)`` of the guest with *picked* on *node*."""
    if guest is None or policy == numa_fit.NONE:
        return False, 'not aligned: NUMA policy %s' % policy
    if guest.nodes is not None:
        # Nova placed (and, for dedicated CPUs, pinned and accounted) the
        # guest at boot; it does not move.
        aligned = node is not None and node in guest.nodes
        where = 'node(s) %s' % ','.join(map(str, sorted(guest.nodes)))
        if aligned:
            return True, 'on NUMA node %s, local to the guest on %s' % (
                node, where)
        why = ('%s %s on NUMA node %s but the guest\'s vCPUs and memory are '
               'on %s (placed by Nova at boot)'
               % (', '.join(picked), 'is' if len(picked) == 1 else 'are',
                  'unknown' if node is None else node, where))
        if policy == numa_fit.REQUIRED:
            raise errors.NumaFitError(
                why + '; use --numa-policy preferred or a device on %s'
                % where, nodes=sorted(guest.nodes))
        return False, 'not aligned (NUMA policy preferred): ' + why
    devices = dict(guest.devices)
    devices.update((a, node) for a in picked)
    placement = numa_fit.place(guest.cells, devices, vcpus=guest.vcpus,
                               memory_mb=guest.memory_mb, dedicated=False,
                               policy=policy)
    return placement.aligned, placement.explanation


@dataclasses.dataclass(frozen=True)
class ReconcilePlan:
    """What makes the record and Placement agree with the guest.

    ``record``: the addresses to record; ``adopted``: in the guest, not
    recorded (an attach stopped before it recorded them); ``forgotten``:
    recorded, marked as being detached and out of the guest (a detach
    stopped before it recorded that); ``reset``: devices to reset before
    anyone gets them (those out of the guest whose detach stopped before
    the reset); ``stray``: recorded, not in the guest and not being
    detached (left alone: the next hard reboot puts them back);
    ``release``: ``{provider: count}`` allocated with no device behind it;
    ``short``: ``{provider: count}`` held beyond the allocation (reported,
    not changed); ``vanished``: recorded devices the host does not have any
    more (nothing is released then: which group they were in is unknown).
    """

    record: tuple = ()
    adopted: tuple = ()
    forgotten: tuple = ()
    reset: tuple = ()
    stray: tuple = ()
    release: Mapping = dataclasses.field(default_factory=dict)
    short: Mapping = dataclasses.field(default_factory=dict)
    vanished: tuple = ()
    clear_marker: bool = False

    @property
    def changes_record(self):
        return bool(self.adopted or self.forgotten or self.clear_marker)

    @property
    def needed(self):
        return bool(self.changes_record or self.release or self.reset)


def plan_reconcile(recorded, in_guest, provider_of, allocated,
                   detaching=()):
    """Compare what the guest holds with the record and the allocation.

    :param recorded: addresses recorded on the instance for this node.
    :param in_guest: PCI addresses in the guest's domain (other host
        devices, such as SR-IOV ports, are ignored).
    :param provider_of: ``{address: provider uuid}`` of the host's devices.
    :param allocated: ``{provider uuid: count}``: the server's allocation
        of accelerators on this host's locality-group providers.
    :param detaching: addresses a detach marked before taking them out of
        the guest.

    The guest is the truth.  An attach claims, then puts the device in the
    guest, then records it; a detach marks the device, takes it out of the
    guest, resets it, records that, then gives the allocation back.  So a
    device in the guest but not recorded was being attached; a marked
    device out of the guest was being detached, and is reset again; an
    allocation with no device behind it is released.
    """
    # Counts, not sets: a guest holds one vGPU parent once per mdev.
    guest = collections.Counter(a for a in in_guest if a in provider_of)
    recorded = list(recorded)
    count = collections.Counter(recorded)
    detaching = set(detaching)
    forgotten = _repeat((a, count[a] - guest[a]) for a in sorted(detaching))
    reset = tuple(sorted(a for a in detaching if a in provider_of
                         and guest[a] < max(count[a], 1)))
    stray = _repeat((a, count[a] - guest[a]) for a in dict.fromkeys(
        recorded) if a in provider_of and a not in detaching)
    vanished = tuple(a for a in recorded if a not in provider_of)
    adopted = _repeat((a, guest[a] - count[a]) for a in guest)
    dropping = collections.Counter(forgotten)
    record = []
    for address in recorded:
        if dropping[address] > 0:
            dropping[address] -= 1
        else:
            record.append(address)
    record = tuple(record) + adopted
    held = {}
    for address in record:
        if address in provider_of:
            rp = provider_of[address]
            held[rp] = held.get(rp, 0) + 1
    release, short = {}, {}
    for provider in sorted(set(held) | set(allocated)):
        diff = allocated.get(provider, 0) - held.get(provider, 0)
        if diff > 0 and not vanished:
            release[provider] = diff
        elif diff < 0:
            short[provider] = -diff
    return ReconcilePlan(record=record, adopted=adopted, forgotten=forgotten,
                         reset=reset, stray=stray, release=release,
                         short=short, vanished=vanished,
                         clear_marker=bool(detaching))


def _repeat(pairs):
    """``[(address, n)]`` -> each address *n* times (n <= 0: none)."""
    return tuple(a for a, n in pairs for _ in range(max(0, n)))


def apply_deltas(allocations, deltas):
    """New allocations: *deltas* ``{(provider, rc): n}`` added to the
    ``{provider: {'resources': {rc: n}}}`` of a GET; amounts that would go
    below 0 stop at 0; empty entries are dropped."""
    new = {rp: {'resources': dict(alloc.get('resources', {}))}
           for rp, alloc in allocations.items()}
    for (rp, rc), delta in sorted(deltas.items()):
        resources = new.setdefault(rp, {'resources': {}})['resources']
        resources[rc] = max(0, resources.get(rc, 0) + delta)
    for rp in list(new):
        res = {rc: n for rc, n in new[rp]['resources'].items() if n > 0}
        if res:
            new[rp]['resources'] = res
        else:
            del new[rp]
    return new


# -- Placement ---------------------------------------------------------


class ServerAllocations(object):
    """The server's allocations in Placement, changed with its consumer
    generation (``report_client`` is Nova's SchedulerReportClient)."""

    def __init__(self, report_client, context, consumer):
        self.client = report_client
        self.context = context
        self.consumer = consumer

    def read(self):
        resp = self.client.get('/allocations/%s' % self.consumer,
                               version=PLACEMENT_VERSION,
                               global_request_id=self.context.global_id)
        if not resp:
            raise AttachError(
                'could not read the allocations of server %s from '
                'Placement: HTTP %s %s; check the [placement] section of '
                'nova.conf and that Placement is up'
                % (self.consumer, resp.status_code, _detail(resp)))
        return resp.json()

    def change(self, deltas, what):
        """Add *deltas* ``{(provider, rc): n}`` to the allocation.

        Re-reads and retries once when Placement answers 409 (the consumer
        or a provider changed since the read).  Returns the deltas really
        applied (a release never goes below 0).

        :raises AllocationConflict: the second try failed too.
        """
        for attempt in (1, 2):
            current = self.read()
            allocations = current.get('allocations') or {}
            if not allocations:
                raise AttachError(
                    'server %s has no allocation in Placement, so nothing '
                    'can be added to or taken from it; run "nova-manage '
                    'placement heal_allocations --instance %s" first'
                    % (self.consumer, self.consumer))
            new = apply_deltas(allocations, deltas)
            applied = _difference(allocations, new)
            if not applied:
                return applied
            payload = {'allocations': new,
                       'consumer_generation': current['consumer_generation'],
                       'project_id': current['project_id'],
                       'user_id': current['user_id']}
            resp = self.client.put(
                '/allocations/%s' % self.consumer, payload,
                version=PLACEMENT_VERSION,
                global_request_id=self.context.global_id)
            if resp.status_code == 204:
                return applied
            detail = _detail(resp)
            if resp.status_code == 409 and attempt == 1:
                LOG.info('Placement refused to %s for server %s (%s); '
                         're-reading its allocations and trying once more',
                         what, self.consumer, detail)
                continue
            if resp.status_code == 409:
                raise AllocationConflict(
                    'Placement refused twice to %s for server %s: %s. '
                    'Something else changed the server\'s allocations (a '
                    'move, a resize, another attach) or the device group '
                    'filled up meanwhile; retry when the server is idle'
                    % (what, self.consumer, detail))
            raise AttachError('Placement refused to %s for server %s: HTTP '
                              '%s %s' % (what, self.consumer,
                                         resp.status_code, detail))

    def accelerators_on(self, providers):
        """``{provider: count}`` of accelerators allocated on *providers*."""
        allocations = self.read().get('allocations') or {}
        counts = {}
        for rp, alloc in allocations.items():
            if rp not in providers:
                continue
            n = sum(v for rc, v in alloc.get('resources', {}).items()
                    if request_mod.is_accelerator_class(rc))
            if n:
                counts[rp] = n
        return counts


def _difference(old, new):
    deltas = {}
    for rp in set(old) | set(new):
        before = old.get(rp, {}).get('resources', {})
        after = new.get(rp, {}).get('resources', {})
        for rc in set(before) | set(after):
            d = after.get(rc, 0) - before.get(rc, 0)
            if d:
                deltas[(rp, rc)] = d
    return deltas


def _detail(resp):
    try:
        errs = resp.json().get('errors') or []
        if errs:
            return errs[0].get('detail') or errs[0].get('title') or ''
    except Exception:   # not JSON
        pass
    return (getattr(resp, 'text', '') or '').strip()


# -- undo --------------------------------------------------------------


class _Undo(object):
    """Steps to undo, run in reverse order on failure."""

    def __init__(self):
        self._steps = []

    def push(self, what, fn, *args, **kwargs):
        self._steps.append((what, fn, args, kwargs))

    def run(self):
        """Undo everything; return what could not be undone."""
        leftovers = []
        while self._steps:
            what, fn, args, kwargs = self._steps.pop()
            try:
                fn(*args, **kwargs)
            except Exception as exc:
                LOG.error('Rollback step failed: %s: %s', what, exc)
                leftovers.append('%s: %s' % (what, exc))
        return leftovers


def _failed(action, instance, exc, undo):
    """The error to raise after rolling back *undo*."""
    leftovers = undo.run()
    if leftovers:
        return RollbackIncomplete(
            '%s for server %s failed: %s; the rollback was incomplete (%s): '
            'run the command again, it reconciles the record and Placement '
            'with the guest first' % (action, instance.uuid, exc,
                                      '; '.join(leftovers)),
            leftovers=leftovers)
    return AttachError('%s for server %s failed: %s; everything was rolled '
                       'back (allocation, guest and device record as '
                       'before)' % (action, instance.uuid, exc))


# -- the operation -----------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """What an attach or detach did: ``changed`` is False for a no-op;
    ``devices`` are the addresses attached or detached (for a no-op, those
    the server holds); ``message`` is for people."""

    changed: bool
    devices: tuple
    message: str
    numa: str = ''


def attach(driver, context, instance, resources, traits=(),
           numa_policy=None, report_client=None):
    """Attach accelerators to *instance* on the host of *driver*.

    :param driver: the host's ``AcceleratedLibvirtDriver`` (it is used for
        its libvirt ``_host``, its ``accelerators`` and
        ``_root_provider_uuid()``/``_numa_cells_for_shared_guests()``).
    :param resources: ``{resource class: count}`` the server should hold on
        this host after the call, counting what it holds already.
    :param traits: traits the devices' provider must have.
    :param numa_policy: ``required``, ``preferred`` or ``none``; default:
        the flavor's ``accelerator:numa_policy``, else ``[accelerator]
        default_numa_policy``.
    :param report_client: Nova's SchedulerReportClient (default: the
        process's ``report_client_singleton()``).
    :returns: an :class:`Outcome`.
    """
    resources = check_resources(resources)
    return _Operation(driver, context, instance, report_client).locked(
        '_attach', resources, frozenset(traits), numa_policy)


def detach(driver, context, instance, address=None, report_client=None):
    """Detach accelerator *address* from *instance* (None: its only
    detachable device).  Detaching what is not attached is a no-op with a
    message; an address the host does not have is an error."""
    return _Operation(driver, context, instance, report_client).locked(
        '_detach', normalize_address(address) if address else None)


def reconcile(driver, context, instance, report_client=None):
    """Make the device record and Placement agree with the guest (after an
    attach or detach was interrupted); returns the :class:`ReconcilePlan`
    applied.  Meant for nova-compute's ``init_host`` as well."""
    return _Operation(driver, context, instance, report_client).locked(
        '_reconcile_now')


class _Operation(object):

    def __init__(self, driver, context, instance, report_client=None):
        if report_client is None:
            report_client = report.report_client_singleton()
        self.driver = driver
        self.context = context
        self.instance = instance
        self.placement = ServerAllocations(report_client, context,
                                           instance.uuid)
        self.nodename = driver._host.get_hostname()

    # -- common ------------------------------------------------------

    def locked(self, method, *args):
        with instance_record.instance_lock(self.instance.uuid):
            # Another process (nova-compute, another command) may have
            # changed it before we got the lock.
            self.instance.refresh()
            self._check_server()
            self.driver.accelerators.refresh()
            self.guest = self._guest()
            return getattr(self, method)(*args)

    def _check_server(self):
        inst = self.instance
        if inst.node != self.nodename:
            raise AttachError(
                'server %s runs on host %s (node %s), not on this host (%s): '
                'run the command on its compute host'
                % (inst.uuid, inst.host, inst.node, self.nodename))
        if inst.vm_state not in (vm_states.ACTIVE, vm_states.STOPPED) or \
                inst.task_state is not None:
            raise AttachError(
                'server %s is %s%s: accelerators are attached to and '
                'detached from ACTIVE or SHUTOFF servers with no task in '
                'progress; retry when it is one'
                % (inst.uuid, inst.vm_state,
                   ' (task %s)' % inst.task_state
                   if inst.task_state else ''))

    def _guest(self):
        try:
            return self.driver._host.get_guest(self.instance)
        except Exception as exc:
            raise AttachError(
                'server %s has no libvirt domain on this host (%s): nothing '
                'to attach to; start or rebuild it first'
                % (self.instance.uuid, exc))

    def _in_guest(self):
        return self.driver.accelerators.addresses_in(self.guest)

    def _mdevs_on(self, dev):
        """UUIDs of the guest's mdevs on the vGPU parent *dev*, newest (the
        highest index) last."""
        in_guest = set(guest_devices.mdev_uuids_in(self.guest))
        driver = self.driver.accelerators.driver_for(dev)
        return [u for u in driver.instance_mdevs(dev, self.instance.uuid)
                if u in in_guest]

    def _root(self):
        return self.driver._root_provider_uuid()

    def _provider_of(self, root):
        return {d.address: inventory.provider_uuid(
                    root, inventory.group_key(d).suffix)
                for d in self.driver.accelerators.devices}

    def _recorded(self):
        return instance_record.devices_on(self.instance, self.nodename)

    def _detaching(self):
        value = self.instance.system_metadata.get(
            DETACHING_PREFIX + self.nodename, '')
        return [a for a in value.split(',') if a]

    def _save_record(self, addresses, detaching=()):
        """Record *addresses* (and the devices being detached) and save."""
        instance_record.record(self.instance, self.nodename, list(addresses))
        key = DETACHING_PREFIX + self.nodename
        if detaching:
            self.instance.system_metadata[key] = ','.join(detaching)
        else:
            self.instance.system_metadata.pop(key, None)
        self.instance.save()

    def _flavor_policy(self):
        specs = self.instance.flavor.extra_specs or {}
        return specs.get(request_mod.NUMA_POLICY_KEY,
                         nova_conf.CONF.accelerator.default_numa_policy)

    def _flavor_counts(self):
        try:
            return request_mod.parse_extra_specs(
                self.instance.flavor.extra_specs or {},
                default_numa_policy=(
                    nova_conf.CONF.accelerator.default_numa_policy)
            ).resources
        except errors.InvalidRequest:
            return {}

    # -- reconcile ---------------------------------------------------

    def _reconcile(self, root):
        provider_of = self._provider_of(root)
        plan = plan_reconcile(
            self._recorded(), self._in_guest(), provider_of,
            self.placement.accelerators_on(set(provider_of.values())),
            detaching=self._detaching())
        notes = []
        if plan.stray:
            notes.append('recorded but not in the guest (left as they are: '
                         'a hard reboot puts them back): %s'
                         % ', '.join(plan.stray))
        if plan.short:
            notes.append('held beyond the allocation (left as they are): %s'
                         % ', '.join('%d on %s' % kv
                                     for kv in sorted(plan.short.items())))
        if plan.vanished:
            notes.append('recorded but gone from the host, so no allocation '
                         'is released: %s' % ', '.join(plan.vanished))
        if notes:
            LOG.warning('Server %s: %s', self.instance.uuid, '; '.join(notes))
        if not plan.needed:
            return plan
        LOG.warning('Server %s: an attach or detach was interrupted; '
                    'healing: recording %s (adopted %s, forgotten %s), '
                    'resetting %s, releasing %s', self.instance.uuid,
                    ','.join(plan.record) or 'none',
                    ','.join(plan.adopted) or 'none',
                    ','.join(plan.forgotten) or 'none',
                    ','.join(plan.reset) or 'none',
                    ', '.join('%d from %s' % (n, rp)
                              for rp, n in sorted(plan.release.items()))
                    or 'nothing')
        known = self.driver.accelerators.by_address()
        for address in plan.reset:
            dev = known[address]
            try:
                driver = self.driver.accelerators.driver_for(dev)
                if inventory.is_shared(dev):
                    # Other guests use the parent: remove this server's
                    # mdevs the guest no longer has, never reset the GPU.
                    driver.detach(dev, self.instance.uuid,
                                  keep=guest_devices.mdev_uuids_in(
                                      self.guest))
                    continue
                driver.uninstall(dev)
            except Exception as exc:
                raise AttachError(
                    'accelerator %s was taken out of server %s by a detach '
                    'that stopped before resetting it, and resetting it now '
                    'failed: %s; it stays allocated to the server so nobody '
                    'gets it: fix the device and run "cyborg-nova detach '
                    '%s" again' % (address, self.instance.uuid, exc,
                                   self.instance.uuid))
        if plan.changes_record:
            self._save_record(plan.record)
        if plan.release:
            rc_of = {provider_of[d.address]: d.resource_class
                     for d in self.driver.accelerators.devices}
            self.placement.change(
                {(rp, rc_of[rp]): -n for rp, n in plan.release.items()},
                'release allocations left by an interrupted attach or '
                'detach')
        return plan

    def _reconcile_now(self):
        return self._reconcile(self._root())

    # -- attach ------------------------------------------------------

    def _attach(self, resources, traits, numa_policy):
        accel = self.driver.accelerators
        policy = numa_policy or self._flavor_policy()
        if policy not in numa_fit.POLICIES:
            raise errors.InvalidRequest('NUMA policy %r is not one of %s'
                                        % (policy,
                                           ', '.join(numa_fit.POLICIES)))
        root = self._root()
        self._reconcile(root)
        known = accel.by_address()
        mine = [known[a] for a in self._recorded() if a in known]
        guests = self.driver._guest_devices()
        held = accel.held(guests)
        vgpus_free = accel.vgpus_free(guests)
        groups = accel.groups(guests)
        traits_of = {}
        candidates = []
        by_provider = accel.groups_by_provider(root)
        for group in groups:
            for address in group.devices:
                traits_of[address] = group.traits
            devs = by_provider[group.provider_uuid(root)][1]
            if devs and inventory.is_shared(devs[0]):
                # A vGPU parent counts once per vGPU it has left.
                free = tuple(d.address for d in devs
                             for _ in range(vgpus_free.get(d.address, 0)))
            else:
                free = tuple(sorted(d.address for d in
                                    device_pick.free_devices(devs, held)))
            candidates.append(Candidate(
                provider=group.provider_uuid(root),
                name=group.provider_name(self.nodename),
                resource_class=group.key.resource_class,
                numa_node=group.key.numa_node,
                traits=group.traits, free=free))

        needs, have = {}, {}
        for rc, count in resources.items():
            matching = [d.address for d in mine if d.resource_class == rc
                        and traits <= traits_of.get(d.address, frozenset())]
            have[rc] = matching
            if len(matching) < count:
                needs[rc] = count - len(matching)
        if not needs:
            holding = tuple(a for rc in sorted(have) for a in have[rc])
            return Outcome(False, holding,
                           'server %s already holds %s (%s): nothing to '
                           'attach; ask for a higher count to add devices'
                           % (self.instance.uuid, _counts(resources),
                              ', '.join(holding)))
        shape = self._shape(mine)
        choices, taken = [], set()
        for rc in sorted(needs):
            choice = choose(candidates, rc, needs[rc], traits, policy,
                            guest=shape, taken=taken)
            # choose() settles the group; which of its devices is the
            # host's pick, as at spawn: topology-aware for whole devices,
            # least loaded parents for vGPUs.
            devs = by_provider[choice.candidate.provider][1]
            if inventory.is_shared(devs[0]):
                best = device_pick.pick_vgpu_parents(
                    devs, len(choice.addresses), vgpus_free,
                    group_name=choice.candidate.name)
            else:
                best = device_pick.pick(
                    devs, len(choice.addresses), held | taken,
                    group_name=choice.candidate.name)
            choice = dataclasses.replace(
                choice, addresses=tuple(d.address for d in best))
            choices.append(choice)
            taken.update(choice.addresses)
            devices = dict(shape.devices)
            devices.update((a, choice.candidate.numa_node)
                           for a in choice.addresses)
            shape = dataclasses.replace(shape, devices=devices)
        picked = [a for c in choices for a in c.addresses]
        LOG.info('Attaching %s to server %s: %s', ', '.join(picked),
                 self.instance.uuid,
                 '; '.join(c.explanation for c in choices))

        undo = _Undo()
        accel.hold_for_attach(self.instance.uuid, picked)
        try:
            try:
                return self._attach_picked(choices, mine, policy, undo)
            except (Exception, KeyboardInterrupt) as exc:
                raise _failed('attaching %s' % ', '.join(picked),
                              self.instance, exc, undo) from exc
        finally:
            accel.drop_attach_hold(self.instance.uuid)

    def _attach_picked(self, choices, mine, policy, undo):
        accel = self.driver.accelerators
        deltas = {}
        for c in choices:
            key = (c.candidate.provider, c.candidate.resource_class)
            deltas[key] = deltas.get(key, 0) + len(c.addresses)
        applied = self.placement.change(deltas, 'add %s' % ', '.join(
            '%d %s from %s' % (n, rc, rp) for (rp, rc), n in deltas.items()))
        undo.push('release the allocation', self.placement.change,
                  {k: -v for k, v in applied.items()},
                  'release the allocation of a failed attach')

        addresses = [a for c in choices for a in c.addresses]
        devices = accel.recheck(addresses)
        others = {a: uuid for uuid, addrs in self.driver._guest_devices(
            ).items() if uuid != self.instance.uuid for a in addrs}
        taken = [d.address for d in devices if d.address in others
                 and not inventory.is_shared(d)]
        if taken:
            raise errors.NoFreeDevice(
                '%s was given to server %s meanwhile; retry, another device '
                'is picked then' % (taken[0], others[taken[0]]))
        live = self.guest.is_active()
        for dev in devices:
            driver = accel.driver_for(dev)
            hostdev = driver.attach(dev, self.instance.uuid)
            cfg = guest_devices.hostdev_config(hostdev)
            if isinstance(hostdev, device_mod.MdevHostdev):
                # A new mdev on a shared parent: only it goes on undo.
                undo.push('take mdev %s out of the guest and remove it'
                          % hostdev.uuid, self._take_out_mdev, dev,
                          hostdev.uuid)
            else:
                undo.push('take %s out of the guest and reset it'
                          % dev.address, self._take_out, dev)
            self.guest.attach_device(cfg, persistent=True, live=live)

        recorded = self._recorded()
        undo.push('restore the device record', self._save_record,
                  list(recorded))
        self._save_record(list(recorded) + addresses)

        numa = self._replace(mine + devices, policy)
        return Outcome(True, tuple(addresses),
                       'attached %s to server %s (%s)%s'
                       % (', '.join(addresses), self.instance.uuid,
                          '; '.join(c.explanation for c in choices),
                          '; %s' % numa if numa else ''), numa=numa)

    def _shape(self, mine):
        inst = self.instance
        nodes = None
        if inst.numa_topology is not None:
            nodes = frozenset(c.id for c in inst.numa_topology.cells)
        return GuestShape(
            vcpus=inst.flavor.vcpus, memory_mb=inst.flavor.memory_mb,
            cells=self.driver._numa_cells_for_shared_guests(), nodes=nodes,
            devices={d.address: d.numa_node for d in mine})

    def _replace(self, devices, policy):
        """Put a shared-CPU guest's vCPUs and memory on its devices' node
        (with no device left: back on every node); returns what was done,
        for the message.  The driver's guest config does the same at every
        rebuild of the XML."""
        inst = self.instance
        if inst.numa_topology is not None or policy == numa_fit.NONE:
            return ''
        cells = self.driver._numa_cells_for_shared_guests()
        placement = numa_fit.place(
            cells, {d.address: d.numa_node for d in devices},
            vcpus=inst.flavor.vcpus, memory_mb=inst.flavor.memory_mb,
            dedicated=False, policy=policy)
        if placement.constrained:
            cpuset, nodes = placement.cpuset, placement.memory_nodes
            what = placement.explanation
        elif devices:
            return placement.explanation
        else:
            cpuset = frozenset().union(*(c.cpus for c in cells.values()))
            nodes = tuple(sorted(cells))
            what = 'vCPUs and memory free to use every NUMA node again'
        if replace_live(self.guest, cpuset, nodes, inst.flavor.vcpus):
            return '%s (applied live)' % what
        return ('%s: applied at the next rebuild of the guest XML (hard '
                'reboot, host reboot); libvirt could not re-place it live'
                % what)

    def _put_back(self, cfg):
        """Attach *cfg* again unless the guest still has it."""
        if isinstance(cfg, vconfig.LibvirtConfigGuestHostdevMDEV):
            present = cfg.uuid in guest_devices.mdev_uuids_in(self.guest)
        else:
            present = guest_devices.address_of(cfg) in \
                guest_devices.pci_addresses_in(self.guest)
        if not present:
            self.guest.attach_device(cfg, persistent=True,
                                     live=self.guest.is_active())

    def _take_out_mdev(self, dev, mdev):
        """Detach the mdev of UUID *mdev* from the guest and remove it."""
        self._detach_mdev_from_guest(mdev)
        self.driver.accelerators.driver_for(dev).remove_mdev(mdev)

    def _take_out(self, dev):
        """Detach *dev* from the guest and reset it."""
        self._detach_from_guest(dev.address)
        driver = self.driver.accelerators.driver_for(dev)
        driver.detach(dev, self.instance.uuid)
        driver.uninstall(dev)

    def _detach_from_guest(self, address):
        """Take PCI device *address* out of the guest, persistent and
        live, and wait until the guest released it (hot-unplug needs the
        guest OS)."""
        self._unplug(vconfig.LibvirtConfigGuestHostdevPCI,
                     lambda cfg: guest_devices.address_of(cfg) == address,
                     address)

    def _detach_mdev_from_guest(self, mdev):
        """The same for the mdev of UUID *mdev*."""
        self._unplug(vconfig.LibvirtConfigGuestHostdevMDEV,
                     lambda cfg: cfg.uuid == mdev, 'mdev %s' % mdev)

    def _unplug(self, kind, matches, what):

        def current(persistent=False):
            for cfg in self.guest.get_all_devices(
                    kind, from_persistent_config=persistent):
                if matches(cfg):
                    return cfg
            return None

        live = self.guest.is_active()
        cfg = current() or current(persistent=True)
        if cfg is None:
            return
        self.guest.detach_device(cfg, persistent=True, live=live)
        if not live:
            return
        conf = nova_conf.CONF.libvirt
        for attempt in range(max(1, conf.device_detach_attempts)):
            deadline = time.monotonic() + conf.device_detach_timeout
            while time.monotonic() < deadline:
                if current() is None:
                    return
                time.sleep(0.2)
            cfg = current()
            if cfg is None:
                return
            LOG.info('Device %s is still in guest %s after %ss; asking '
                     'again (%d)', what, self.instance.uuid,
                     conf.device_detach_timeout, attempt + 1)
            self.guest.detach_device(cfg, persistent=False, live=True)
        raise AttachError(
            'the guest of server %s did not release %s (no answer to %d '
            'hot-unplug requests): it stays attached; check the guest OS '
            'supports PCI hot-unplug, or stop the server and retry'
            % (self.instance.uuid, what, conf.device_detach_attempts))

    # -- detach ------------------------------------------------------

    def _detach(self, address):
        accel = self.driver.accelerators
        root = self._root()
        self._reconcile(root)
        known = accel.by_address()
        mine = [known[a] for a in self._recorded() if a in known]
        if address is None:
            flavor = self._flavor_counts()
            detachable = list({d.address: d for d in mine
                               if _spare(d, mine, flavor)}.values())
            if not detachable:
                return Outcome(False, tuple(d.address for d in mine),
                               'server %s holds no accelerator that can be '
                               'detached%s: nothing to do'
                               % (self.instance.uuid, _holding(mine)))
            if len(detachable) > 1:
                raise errors.InvalidRequest(
                    'server %s holds %s: name the one to detach'
                    % (self.instance.uuid,
                       ', '.join(d.address for d in detachable)))
            dev = detachable[0]
        else:
            if address not in known:
                raise errors.DeviceNotFound(
                    '%s is not an accelerator of this host (%s); "cyborg-'
                    'nova discover" lists them%s'
                    % (address, self.nodename, _holding(mine)))
            held = {d.address: d for d in mine}
            if address not in held:
                return Outcome(False, tuple(held),
                               '%s is not attached to server %s%s: nothing '
                               'to do' % (address, self.instance.uuid,
                                          _holding(mine)))
            dev = held[address]
            if not _spare(dev, mine, self._flavor_counts()):
                raise errors.InvalidRequest(
                    '%s came with the flavor of server %s (resources:%s=%d):'
                    ' resize the server to a flavor without it instead'
                    % (address, self.instance.uuid, dev.resource_class,
                       self._flavor_counts().get(dev.resource_class, 0)))

        undo = _Undo()
        try:
            return self._detach_device(dev, root, undo)
        except (Exception, KeyboardInterrupt) as exc:
            raise _failed('detaching %s' % dev.address, self.instance, exc,
                          undo) from exc

    def _detach_device(self, dev, root, undo):
        accel = self.driver.accelerators
        driver = accel.driver_for(dev)
        recorded = self._recorded()
        shared = inventory.is_shared(dev)
        if shared:
            mdevs = self._mdevs_on(dev)
            if not mdevs:
                raise AttachError(
                    'server %s is recorded with a vGPU on %s but its guest '
                    'has no mdev there; run "cyborg-nova detach %s" again '
                    'after a hard reboot of the server'
                    % (self.instance.uuid, dev.address, self.instance.uuid))
        # Marked first: a detach interrupted after the device left the
        # guest, before it was reset, is finished by reconcile().
        undo.push('restore the device record', self._save_record,
                  list(recorded))
        self._save_record(recorded, detaching=[dev.address])

        if shared:
            # The newest of its mdevs there goes; the parent is not reset
            # (other guests use it).
            mdev = mdevs[-1]
            undo.push('put mdev %s back in the guest' % mdev,
                      self._put_back, guest_devices.hostdev_config(
                          device_mod.MdevHostdev(
                              uuid=mdev, mdev_type=driver.type_of(dev),
                              parent=dev.address)))
            self._detach_mdev_from_guest(mdev)
            driver.remove_mdev(mdev)
            left = list(recorded)
            left.remove(dev.address)
        else:
            hostdev = driver.attach(dev, self.instance.uuid)
            undo.push('put %s back in the guest' % dev.address,
                      self._put_back, guest_devices.hostdev_config(hostdev))
            self._detach_from_guest(dev.address)
            driver.detach(dev, self.instance.uuid)
            driver.uninstall(dev)
            left = [a for a in recorded if a != dev.address]

        self._save_record(left)

        provider = inventory.provider_uuid(root,
                                           inventory.group_key(dev).suffix)
        self.placement.change({(provider, dev.resource_class): -1},
                              'release %s %s' % (dev.resource_class,
                                                 dev.address))
        known = accel.by_address()
        numa = self._replace([known[a] for a in left if a in known],
                             self._flavor_policy())
        return Outcome(True, (dev.address,),
                       'detached %s from server %s; %s%s'
                       % ('a vGPU on %s (mdev %s)' % (dev.address, mdev)
                          if shared else dev.address, self.instance.uuid,
                          'the mdev was removed' if shared else
                          'it was reset and is free again',
                          '; %s' % numa if numa else ''), numa=numa)


def _spare(dev, mine, flavor):
    """Whether *dev* may go: the server keeps what its flavor asks."""
    return dev.resource_class in request_mod.beyond_flavor(
        [d.resource_class for d in mine], flavor)


def _holding(devices):
    if not devices:
        return ' (it holds none)'
    return ' (it holds %s)' % ', '.join(d.address for d in devices)


def _counts(resources):
    return ', '.join('%s=%d' % kv for kv in sorted(resources.items()))


def replace_live(guest, cpuset, memory_nodes, vcpus):
    """Pin every vCPU of a guest to the host CPUs *cpuset* and bind its
    memory to *memory_nodes*, live (when it runs) and in the persistent
    config, with the libvirt domain API: Nova's Guest has no call for it.

    Returns False when the domain cannot (an old libvirt, no cgroups, or
    Nova's test fake, which lacks ``pinVcpuFlags``): the driver's guest
    config then applies it at the next rebuild of the XML.
    """
    libvirt = libvirt_guest.libvirt
    domain = guest._domain
    pin = getattr(domain, 'pinVcpuFlags', None)
    if pin is None or not cpuset:
        return False
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if guest.is_active():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    cpumap = tuple(cpu in cpuset for cpu in range(max(cpuset) + 1))
    try:
        for vcpu in range(vcpus):
            pin(vcpu, cpumap, flags)
        set_numa = getattr(domain, 'setNumaParameters', None)
        if set_numa is not None and memory_nodes:
            # Memory the guest has already stays where it is: the binding
            # applies from its next start.
            set_numa({'numa_nodeset': numa_fit.format_cpus(memory_nodes)},
                     libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        LOG.warning('Could not re-place guest %s live: %s; its XML gets it '
                    'at the next rebuild', guest.uuid, exc)
        return False
    return True
