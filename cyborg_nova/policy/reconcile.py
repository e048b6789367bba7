"""What a compute host's accelerator state should be, and what to do when
it is not.  Pure decisions over plain data.

Four sources can disagree after nova-compute was down, crashed mid-spawn
or the host changed under it:

* the libvirt guests (which device each domain holds): the truth of what
  is attached;
* Placement (what each consumer was allocated from our group providers):
  the truth of what the scheduler will hand out next;
* the instances' records (``system_metadata``, see
  :mod:`cyborg_nova.virt_hooks.instance_record`): what rebuilds a guest's
  XML at the next hard reboot;
* the devices that exist on the host now.

:func:`plan` compares them and returns a :class:`Plan`: what is safe to
heal (records rewritten from what the guest really holds, stale in-memory
claims dropped) and :class:`Finding` s for people, each naming the server,
the devices and what to do.  Nothing that would take a device from a guest
or change an allocation is done here: those need a person.

:func:`health_transitions` decides which device health changes are news
(reported once per change, not once per period).
"""

import dataclasses

ERROR = 'error'
WARNING = 'warning'
INFO = 'info'

# Finding codes.
DEVICE_VANISHED = 'device_vanished'
DEVICE_SHARED = 'device_shared'
UNKNOWN_GUEST = 'unknown_guest'
DEVICE_WITHOUT_ALLOCATION = 'device_without_allocation'
ALLOCATION_WITHOUT_DEVICE = 'allocation_without_device'
RECORD_WITHOUT_GUEST_DEVICE = 'record_without_guest_device'
RECORD_HEALED = 'record_healed'
PENDING_RELEASED = 'pending_released'
BUSY = 'operation_in_progress'

#: Why a device that vanished counts as unhealthy.
VANISHED_REASON = ('no longer found on the host (it fell off the bus, was '
                   'unbound or removed); check dmesg and cyborg-nova '
                   'discover')


@dataclasses.dataclass(frozen=True)
class InstanceFacts:
    """A Nova instance on this host, as Nova's database says."""

    uuid: str
    recorded: tuple = ()     # addresses its record names for this node
    settled: bool = True     # False while an operation is in progress
    name: str = ''


@dataclasses.dataclass(frozen=True)
class HostFacts:
    devices: frozenset = frozenset()  # addresses that exist on the host
    groups: dict = dataclasses.field(default_factory=dict)
    #: provider uuid -> frozenset of the existing device addresses in it
    provider_names: dict = dataclasses.field(default_factory=dict)
    #: provider uuid -> provider name (also of providers with no device)
    guests: dict = dataclasses.field(default_factory=dict)
    #: libvirt domain uuid -> addresses it holds (empty for none)
    instances: dict = dataclasses.field(default_factory=dict)
    #: instance uuid -> InstanceFacts, Nova's instances on this host
    allocations: dict = dataclasses.field(default_factory=dict)
    #: consumer uuid -> {provider uuid: units} on our group providers
    pending: dict = dataclasses.field(default_factory=dict)
    #: instance uuid -> addresses claimed by a spawn in progress
    shared: frozenset = frozenset()
    #: addresses of vGPU parents: several guests hold them by design (a
    #: guest lists a parent once per mdev it has there)


@dataclasses.dataclass(frozen=True)
class Finding:
    level: str               # ERROR, WARNING or INFO
    code: str
    instance: str | None
    devices: tuple
    message: str


@dataclasses.dataclass
class Plan:
    #: instance uuid -> addresses to record (what its guest holds)
    write_records: dict = dataclasses.field(default_factory=dict)
    #: instance uuids whose in-memory claim is stale
    release_pending: list = dataclasses.field(default_factory=list)
    findings: list = dataclasses.field(default_factory=list)

    @property
    def problems(self):
        """Findings a person must act on."""
        return [f for f in self.findings if f.level in (ERROR, WARNING)]

    @property
    def changes_nothing(self):
        return not (self.write_records or self.release_pending or
                    self.problems)


def _addrs(addresses):
    return ', '.join(sorted(addresses)) or 'none'


def _server(facts, uuid):
    inst = facts.instances.get(uuid)
    if inst is not None and inst.name:
        return 'server %s (%s)' % (uuid, inst.name)
    return 'server %s' % uuid


def _group_of(facts):
    group_of = {}
    for rp, addresses in facts.groups.items():
        for address in addresses:
            group_of[address] = rp
    return group_of


def plan(facts):
    """The :class:`Plan` for one host's :class:`HostFacts`."""
    result = Plan()
    add = result.findings.append
    group_of = _group_of(facts)

    def provider(rp):
        return facts.provider_names.get(rp, rp)

    # Who holds each device: more than one guest is the worst case.
    holders = {}
    for guest, addresses in sorted(facts.guests.items()):
        for address in addresses:
            holders.setdefault(address, []).append(guest)
    for address, guests in sorted(holders.items()):
        if len(set(guests)) > 1 and address not in facts.shared:
            add(Finding(
                ERROR, DEVICE_SHARED, None, (address,),
                'accelerator %s is in the libvirt domains of %d guests (%s): '
                'only one can use it; stop all but one and cold migrate or '
                'resize the others, which then get a device of their own'
                % (address, len(guests), ', '.join(guests))))

    vanished_of = {}
    for guest, addresses in sorted(facts.guests.items()):
        vanished = sorted(set(addresses) - facts.devices)
        if not vanished:
            continue
        vanished_of[guest] = vanished
        add(Finding(
            ERROR, DEVICE_VANISHED, guest, tuple(vanished),
            '%s holds accelerator(s) %s that this host no longer has (%s); '
            'the guest has most likely lost them and a hard reboot will '
            'fail: cold migrate or resize the server to get a working '
            'device, or delete it; its Placement allocation stays until '
            'then' % (_server(facts, guest), _addrs(vanished),
                      VANISHED_REASON)))

    for guest, addresses in sorted(facts.guests.items()):
        if not addresses or guest in facts.instances:
            continue
        add(Finding(
            ERROR, UNKNOWN_GUEST, guest, tuple(sorted(addresses)),
            'libvirt domain %s holds accelerator(s) %s but is not a Nova '
            'instance of this host (deleted or evacuated while nova-compute '
            'was down?); its devices are not given to new servers, but '
            'Placement may count them free so spawns here can fail: check '
            'it with "virsh dominfo %s" and undefine it if it is a leftover'
            % (guest, _addrs(addresses), guest)))

    # Allocations against what guests hold, per group provider.
    for consumer in sorted(set(facts.guests) | set(facts.allocations)):
        inst = facts.instances.get(consumer)
        if inst is not None and not inst.settled:
            continue
        if inst is None and consumer not in facts.guests:
            continue      # a migration's allocation, or not ours to judge
        held = [a for a in facts.guests.get(consumer, ()) if a in group_of]
        alloc = facts.allocations.get(consumer, {})
        held_by_rp = {}
        for address in held:
            held_by_rp.setdefault(group_of[address], []).append(address)
        shortfall = []
        for rp in sorted(set(alloc) | set(held_by_rp)):
            units = alloc.get(rp, 0)
            mine = sorted(held_by_rp.get(rp, ()))
            if len(mine) > units:
                if inst is None:
                    continue      # reported above as an unknown guest
                add(Finding(
                    ERROR, DEVICE_WITHOUT_ALLOCATION, consumer, tuple(mine),
                    '%s holds %d accelerator(s) of provider %s (%s) but '
                    'Placement allocated it %d there: Placement may give '
                    'them to another server, whose spawn here then fails; '
                    'run "nova-manage placement heal_allocations --instance '
                    '%s" if its flavor asks for them, else resize it to a '
                    'flavor that does' % (
                        _server(facts, consumer), len(mine), provider(rp),
                        _addrs(mine), units, consumer, )))
            elif len(mine) < units:
                shortfall.append((rp, units, mine))
        missing = sum(units - len(mine) for _, units, mine in shortfall)
        if inst is None or missing <= len(vanished_of.get(consumer, ())):
            continue          # explained by the vanished devices
        recorded = set(inst.recorded) & facts.devices
        for rp, units, mine in shortfall:
            back = sorted((recorded & facts.groups.get(rp, frozenset()))
                          - set(mine))
            if back:
                todo = ('its record still names %s: hard reboot the server '
                        '("openstack server reboot --hard %s") to put them '
                        'back before another server is given them'
                        % (_addrs(back), consumer))
            else:
                todo = ('nothing records which device it had: cold migrate '
                        'or resize the server to get one, or delete it; '
                        '"nova-manage placement audit" lists the allocation')
            add(Finding(
                ERROR, ALLOCATION_WITHOUT_DEVICE, consumer, tuple(mine),
                'Placement allocated %d unit(s) of provider %s to %s but '
                'its guest holds %d device(s) of that group (%s); %s'
                % (units, provider(rp), _server(facts, consumer), len(mine),
                   _addrs(mine), todo)))

    # Records: the guest is the truth of what it holds.
    for uuid, inst in sorted(facts.instances.items()):
        if not inst.settled:
            if facts.guests.get(uuid) or inst.recorded:
                add(Finding(INFO, BUSY, uuid, tuple(inst.recorded),
                            '%s has an operation in progress; its '
                            'accelerators are not reconciled now'
                            % _server(facts, uuid)))
            continue
        held = tuple(sorted(facts.guests.get(uuid, ())))
        recorded = tuple(sorted(inst.recorded))
        if held:
            if held != recorded:
                result.write_records[uuid] = held
                add(Finding(
                    INFO, RECORD_HEALED, uuid, held,
                    '%s: its guest holds %s, its record said %s; the record '
                    'now says what the guest holds' % (
                        _server(facts, uuid), _addrs(held),
                        _addrs(recorded))))
        elif recorded and uuid in facts.allocations:
            pass      # reported above as an allocation without a device
        elif recorded:
            add(Finding(
                WARNING, RECORD_WITHOUT_GUEST_DEVICE, uuid, recorded,
                '%s is recorded to hold accelerator(s) %s but %s and '
                'Placement allocated it none here; the next hard reboot '
                'would attach them again: check the server, and resize it '
                'to a flavor without accelerators if it should have none'
                % (_server(facts, uuid), _addrs(recorded),
                   'its libvirt domain holds none' if uuid in facts.guests
                   else 'it has no libvirt domain')))

    # In-memory claims of spawns that are not running any more.
    for uuid, addresses in sorted(facts.pending.items()):
        inst = facts.instances.get(uuid)
        if inst is None or inst.settled:
            result.release_pending.append(uuid)
            add(Finding(INFO, PENDING_RELEASED, uuid, tuple(addresses),
                        'claim of %s for %s dropped: no spawn of it is in '
                        'progress' % (_addrs(addresses),
                                      _server(facts, uuid))))
    return result


# -- health ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Transition:
    address: str
    healthy: bool            # the new state
    reason: str              # why unhealthy (new state) or was (recovered)


def health_transitions(previous, current):
    """Health changes worth reporting.

    *previous* and *current* map the address of every device known then
    (after the last call) and now to why it is unhealthy (``''`` when it
    is healthy).  A device known before and absent now turned unhealthy
    (:data:`VANISHED_REASON`) and is remembered so; a device seen for the
    first time is news only when it is unhealthy.  A device staying
    unhealthy, even for another reason, is no news: one report per change.

    Returns ``(transitions, state)``; pass *state* as *previous* next time.
    """
    transitions = []
    state = dict(current)
    for address in sorted(set(previous) | set(current)):
        was = previous.get(address)          # None: never seen
        if address in current:
            now = current[address]
        else:
            now = was or VANISHED_REASON     # gone: unhealthy until back
            state[address] = now
        if now and not was:
            transitions.append(Transition(address, False, now))
        elif was and not now:
            transitions.append(Transition(address, True, was))
    return transitions, state
