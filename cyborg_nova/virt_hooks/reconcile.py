"""Reconcile a compute host's accelerators when nova-compute starts.

Gathers what the libvirt guests hold, what Placement allocated from this
host's group providers, what the instances' records say and which devices
exist; :func:`cyborg_nova.policy.reconcile.plan` decides; this module
heals what is safe (records rewritten from what the guest holds, stale
in-memory claims dropped) and logs every finding: errors and warnings say
what to do.  Placement's inventory is corrected by the periodic resource
update that follows start-up.  Nothing here may stop nova-compute from
starting: a failure to reconcile is logged and start-up goes on.
"""

from nova.compute import vm_states
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from oslo_log import log as logging

from cyborg_nova.policy import classify
from cyborg_nova.policy import inventory
from cyborg_nova.policy import reconcile as policy
from cyborg_nova.virt_hooks import instance_record

LOG = logging.getLogger(__name__)

#: Where records were kept before they were kept per node; still read.
#: Instances in these states, with no task, are reconciled; the others have
#: an operation in progress (or are between hosts) and are left alone.
SETTLED_STATES = (vm_states.ACTIVE, vm_states.STOPPED, vm_states.PAUSED,
                  vm_states.SUSPENDED, vm_states.RESCUED)

GROUP_TRAIT = classify.custom_name('ACCEL_GROUP')

_LOG_AT = {policy.ERROR: LOG.error, policy.WARNING: LOG.warning,
           policy.INFO: LOG.info}


def recorded(instance, nodename):
    """Addresses the instance's record names on *nodename*."""
    return instance_record.devices_on(instance, nodename)


def domains(driver):
    """``{domain uuid: [address]}`` of every defined libvirt domain (an
    empty list for a domain without host devices); a domain's mdevs count
    as their vGPU parent, once per mdev."""
    result = {}
    for guest in driver._host.list_guests(only_running=False):
        try:
            result[guest.uuid] = driver.accelerators.addresses_in(guest)
        except Exception as exc:      # a guest vanishing while we look
            LOG.debug('Could not read devices of guest %s: %s', guest.uuid,
                      exc)
    return result


def group_allocations(reportclient, context, root_uuid):
    """``({provider uuid: name}, {consumer: {provider uuid: units}})`` of
    this host's accelerator group providers in Placement."""
    resp = reportclient.get(
        '/resource_providers?in_tree=%s&required=%s' % (root_uuid,
                                                        GROUP_TRAIT),
        version='1.18', global_request_id=context.global_id)
    if resp.status_code != 200:
        raise RuntimeError('Placement answered %s to the list of providers '
                           'in tree %s: %s' % (resp.status_code, root_uuid,
                                               resp.text))
    names = {}
    allocations = {}
    for rp in resp.json()['resource_providers']:
        if rp['uuid'] == root_uuid:
            continue
        names[rp['uuid']] = rp['name']
        info = reportclient.get_allocations_for_resource_provider(
            context, rp['uuid'])
        for consumer, alloc in info.allocations.items():
            units = sum(alloc.get('resources', {}).values())
            if units:
                allocations.setdefault(consumer, {})[rp['uuid']] = units
    return names, allocations


def gather(driver, context, nodename, root_uuid, instances):
    """The :class:`~cyborg_nova.policy.reconcile.HostFacts` of this host."""
    accel = driver.accelerators
    # vGPU parents are shared by design; a guest holds one once per mdev,
    # and Placement counts vGPUs: the same comparison holds for them.
    shared = frozenset(d.address for d in accel.devices
                       if inventory.is_shared(d))
    groups = {rp: frozenset(d.address for d in devs)
              for rp, (_, devs) in accel.groups_by_provider(
                  root_uuid).items()}
    names, allocations = group_allocations(driver.virtapi.reportclient,
                                           context, root_uuid)
    allocations = {c: {rp: n for rp, n in a.items() if rp in groups}
                   for c, a in allocations.items()}
    allocations = {c: a for c, a in allocations.items() if a}
    facts = {}
    for inst in instances:
        facts[inst.uuid] = policy.InstanceFacts(
            uuid=inst.uuid, recorded=tuple(recorded(inst, nodename)),
            settled=(inst.vm_state in SETTLED_STATES and
                     inst.task_state is None),
            name=inst.display_name or '')
    pending = accel.spawn_claims()
    return policy.HostFacts(
        devices=frozenset(d.address for d in accel.devices),
        groups=groups, provider_names=names,
        guests={u: tuple(a) for u, a in domains(driver).items()},
        instances=facts, allocations=allocations, pending=pending,
        shared=shared)


def apply(driver, context, plan, instances, nodename):
    """Heal what the plan says is safe; log every finding."""
    by_uuid = {i.uuid: i for i in instances}
    for uuid, addresses in sorted(plan.write_records.items()):
        inst = by_uuid[uuid]
        try:
            with instance_record.instance_lock(uuid):
                instance_record.record(inst, nodename, list(addresses))
                inst.save()
        except Exception as exc:
            LOG.error('Could not rewrite the accelerator record of server '
                      '%s to %s: %s; it is retried at the next start of '
                      'nova-compute', uuid, ', '.join(addresses), exc)
    for uuid in plan.release_pending:
        driver.accelerators.release(uuid)
    for finding in plan.findings:
        _LOG_AT[finding.level]('Accelerator reconcile: %s', finding.message)


def run(driver, host, nodename):
    """Reconcile this host; return the plan (None when there is nothing to
    reconcile: a host that never ran, or a failure, which is logged).

    *host* is the compute service's host name (``instance.host``),
    *nodename* its hypervisor node name.
    """
    context = nova_context.get_admin_context()
    try:
        root_uuid = objects.ComputeNode.get_by_nodename(context,
                                                        nodename).uuid
    except nova_exception.NotFound:
        LOG.debug('Accelerator reconcile: compute node %s is new, nothing '
                  'to reconcile', nodename)
        return None
    try:
        instances = objects.InstanceList.get_by_host(
            context, host, expected_attrs=['system_metadata'])
        facts = gather(driver, context, nodename, root_uuid, instances)
        plan = policy.plan(facts)
        apply(driver, context, plan, instances, nodename)
    except Exception:
        LOG.exception('Accelerator reconcile failed; nova-compute starts '
                      'anyway and the periodic resource update corrects '
                      'Placement inventory, but guests, records and '
                      'allocations were not compared')
        return None
    if plan.changes_nothing:
        LOG.info('Accelerator reconcile: %d guest(s), %d instance(s), %d '
                 'consumer(s) of %d group provider(s): consistent',
                 len(facts.guests), len(facts.instances),
                 len(facts.allocations), len(facts.provider_names))
    return plan
