"""Synthetic fleets of GPU and CPU-only compute hosts, as the scheduler sees
them, for benchmarks and (later) a fleet simulator.

A host is described first as plain data (:class:`HostProfile`: how many
GPUs per NUMA node, how many of them guests hold, how many dedicated CPUs
are pinned, whether its service is disabled); adapters then turn a profile
into what each scheduler pipeline reads:

* :func:`nova_host_state`: a real ``nova.scheduler.host_manager.HostState``
  populated by ``HostState.update()`` from a ``ComputeNode`` as the compute
  host's resource tracker would report it with Nova's own (legacy) PCI
  tracking: ``pci_device_pools`` built by a compute-side ``PciDeviceStats``
  from ``PciDevice`` objects that ``[pci] device_spec`` allows, and a real
  two-cell ``NUMATopology``;
* :func:`ours_host_state`: the same host as cyborg-nova reports it: no Nova
  PCI pools, the accelerator summary of
  :func:`cyborg_nova.policy.host_stats.encode` in ``ComputeNode.stats``,
  made from :class:`cyborg_nova.device.Device` objects, and each NUMA cell
  marked with its node (the network metadata our compute driver adds);
* :func:`nova_candidates` / :func:`ours_candidates`: the allocation
  candidates Placement returns for the host (legacy PCI: root provider
  only; ours: one candidate per NUMA-node provider with a free GPU).

:func:`can_fit` is the independent answer to "may this host take the
request", to check the pipelines against.
"""

import dataclasses
import datetime
import functools
import json
import uuid

import os_resource_classes as orc

from cyborg_nova import device as cn_device
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory

GPU_VENDOR = '10de'
GPU_PRODUCT = '2330'          # H100 80GB HBM3
GPU_CLASS = '030200'          # 3D controller
PCI_ALIAS = 'gpu'

NODES = 2
GPUS_PER_NODE = 4
#: Per NUMA node: SMT cores (2 threads each); half the threads are the
#: node's part of ``cpu_shared_set``, half of ``cpu_dedicated_set``.
CORES_PER_NODE = 16
MEMORY_MB_PER_NODE = 256 * 1024

#: Namespace of the synthetic hosts' compute node uuids (stable per name).
_HOST_NAMESPACE = uuid.UUID('0b7c3c5e-9a51-4d0e-8c43-2f6f1d3a9e77')


@dataclasses.dataclass(frozen=True)
class HostProfile:
    """One compute host as plain data.

    ``gpus``/``gpus_used``/``pcpus_pinned`` are per NUMA node.
    """

    name: str
    variant: str
    gpus: tuple = (0,) * NODES
    gpus_used: tuple = (0,) * NODES
    pcpus_pinned: tuple = (0,) * NODES
    disabled: bool = False

    @property
    def uuid(self):
        return str(uuid.uuid5(_HOST_NAMESPACE, self.name))

    @property
    def has_gpus(self):
        return sum(self.gpus) > 0

    def gpus_free(self, node):
        return self.gpus[node] - self.gpus_used[node]

    def pcpus_free(self, node):
        return CORES_PER_NODE - self.pcpus_pinned[node]


_FULL = CORES_PER_NODE       # pCPUs per node (one thread of each core)
_G = (GPUS_PER_NODE,) * NODES

#: GPU host variants, cycled over the GPU half of a fleet: mostly idle
#: hosts, plus each case where the answer differs.
GPU_VARIANTS = (
    ('gpu-idle', dict(gpus=_G)),
    ('gpu-idle', dict(gpus=_G)),
    ('gpu-node0-busy', dict(gpus=_G, gpus_used=(GPUS_PER_NODE, 0))),
    ('gpu-idle', dict(gpus=_G)),
    ('gpu-all-busy', dict(gpus=_G, gpus_used=_G)),
    ('gpu-idle-disabled', dict(gpus=_G, disabled=True)),
    # GPUs free only on node 0, whose dedicated CPUs are all pinned: a
    # shared-CPU guest fits, a dedicated-CPU guest cannot be NUMA-local.
    ('gpu-free-where-pcpus-full', dict(gpus=_G, gpus_used=(0, GPUS_PER_NODE),
                                       pcpus_pinned=(_FULL, 0))),
    ('gpu-idle', dict(gpus=_G)),
    # All GPUs free, node 0's dedicated CPUs all pinned: fits on node 1.
    ('gpu-node0-pcpus-full', dict(gpus=_G, pcpus_pinned=(_FULL, 0))),
    ('gpu-idle', dict(gpus=_G)),
)
CPU_VARIANTS = (
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle-disabled', dict(disabled=True)),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
    ('cpu-idle', {}),
)


def fleet(size):
    """*size* hosts: even ones with 8 GPUs over 2 NUMA nodes, odd ones with
    none, each half cycling through its variants.  Deterministic."""
    hosts = []
    for i in range(size):
        variants = GPU_VARIANTS if i % 2 == 0 else CPU_VARIANTS
        variant, fields = variants[(i // 2) % len(variants)]
        hosts.append(HostProfile(name='compute-%05d' % i, variant=variant,
                                 **fields))
    return hosts


@dataclasses.dataclass(frozen=True)
class Request:
    """The server to place: size and CPU policy; it always asks for one
    GPU (Nova: ``pci_passthrough:alias=gpu:1``; ours:
    ``resources:PGPU=1``)."""

    dedicated: bool
    vcpus: int = 4
    memory_mb: int = 8192
    root_gb: int = 20
    gpus: int = 1

    @property
    def cpu_policy(self):
        return 'dedicated' if self.dedicated else 'shared'


def can_fit(profile, request):
    """Whether *profile* may take *request*, with NUMA locality as Nova's
    ``legacy`` PCI NUMA policy (and ``accelerator:numa_policy=required``)
    asks it: a guest with dedicated CPUs needs one node with both a free
    GPU and enough unpinned CPUs; a shared-CPU guest has no NUMA topology
    and needs a free GPU anywhere."""
    if profile.disabled:
        return False
    nodes = range(NODES)
    if request.dedicated:
        return any(profile.gpus_free(n) >= request.gpus and
                   profile.pcpus_free(n) >= request.vcpus for n in nodes)
    return sum(profile.gpus_free(n) for n in nodes) >= request.gpus


# -- plain data shared by both adapters --------------------------------------

def gpu_addresses(profile):
    """``{node: [address, ...]}``, buses spread as on a 2-socket board."""
    out = {}
    for node in range(NODES):
        out[node] = ['0000:%02x:00.0' % (0x18 + 0x10 * (node * 8 + k))
                     for k in range(profile.gpus[node])]
    return out


def used_addresses(profile):
    """The GPUs guests hold: the first ``gpus_used[node]`` of each node."""
    addrs = gpu_addresses(profile)
    return [a for node in range(NODES)
            for a in addrs[node][:profile.gpus_used[node]]]


def devices(profile):
    """The host's GPUs as cyborg-nova's drivers report them: assignable,
    healthy, each in its own IOMMU group."""
    out = []
    for node, addrs in gpu_addresses(profile).items():
        for addr in addrs:
            out.append(cn_device.Device(
                address=addr, vendor_id=GPU_VENDOR, product_id=GPU_PRODUCT,
                class_id=GPU_CLASS, driver='pci', name='H100 80GB HBM3',
                numa_node=node, numa_source='sysfs',
                iommu_group=int(addr[5:7], 16), kernel_driver='vfio-pci',
                reset_methods=('flr', 'bus'), resource_class=orc.PGPU))
    return out


def locality_groups(profile):
    return inventory.locality_groups(devices(profile),
                                     in_use=used_addresses(profile))


def _node_cpus(node):
    """(shared cpuset, dedicated pcpuset, siblings) of a node: thread t of
    core c is CPU ``base + c + t * CORES_PER_NODE``; thread 0 of each core
    is shared, thread 1 dedicated (as a ``cpu_dedicated_set`` of one
    thread per core would be)."""
    base = node * 2 * CORES_PER_NODE
    shared = set(range(base, base + CORES_PER_NODE))
    dedicated = set(range(base + CORES_PER_NODE, base + 2 * CORES_PER_NODE))
    siblings = [{base + c, base + c + CORES_PER_NODE}
                for c in range(CORES_PER_NODE)]
    return shared, dedicated, siblings


# -- Nova objects -------------------------------------------------------------

def numa_topology(profile, markers=False):
    """The host's ``nova.objects.NUMATopology`` (2 cells), with pinned
    dedicated CPUs and their memory as used.  *markers*: each cell's
    network metadata carries its node marker, as cyborg-nova's compute
    driver reports it (:mod:`cyborg_nova.policy.numa_affinity`)."""
    from nova import objects

    from cyborg_nova.policy import numa_affinity

    cells = []
    for node in range(NODES):
        shared, dedicated, siblings = _node_cpus(node)
        pinned = set(sorted(dedicated)[:profile.pcpus_pinned[node]])
        cells.append(objects.NUMACell(
            id=node, socket=node,
            cpuset=shared, pcpuset=dedicated, pinned_cpus=pinned,
            cpu_usage=len(pinned),
            memory=MEMORY_MB_PER_NODE, memory_usage=0,
            mempages=[
                objects.NUMAPagesTopology(
                    size_kb=4, total=MEMORY_MB_PER_NODE * 256, used=0,
                    reserved=0),
                objects.NUMAPagesTopology(
                    size_kb=2048, total=0, used=0, reserved=0)],
            siblings=siblings,
            network_metadata=objects.NetworkMetadata(
                physnets={numa_affinity.marker(node)} if markers else set(),
                tunneled=False)))
    return objects.NUMATopology(cells=cells)


def nova_device_spec():
    """``[pci] device_spec`` for the GPUs (one JSON string)."""
    return json.dumps({'vendor_id': GPU_VENDOR, 'product_id': GPU_PRODUCT})


def nova_alias():
    """``[pci] alias`` for the GPUs (one JSON string)."""
    return json.dumps({'vendor_id': GPU_VENDOR, 'product_id': GPU_PRODUCT,
                       'device_type': 'type-PCI', 'name': PCI_ALIAS})


def nova_pci_pools(profile, topology):
    """``ComputeNode.pci_device_pools`` as the compute host's resource
    tracker reports them: a compute-side ``PciDeviceStats`` fed the free
    ``PciDevice`` objects ``[pci] device_spec`` allows."""
    from nova import objects
    from nova.pci import stats as pci_stats
    from nova.pci import whitelist

    stats = pci_stats.PciDeviceStats(
        topology, dev_filter=whitelist.Whitelist([nova_device_spec()]))
    used = set(used_addresses(profile))
    for node, addrs in gpu_addresses(profile).items():
        for addr in addrs:
            if addr in used:
                continue
            stats.add_device(objects.PciDevice(
                compute_node_id=1, address=addr, vendor_id=GPU_VENDOR,
                product_id=GPU_PRODUCT, numa_node=node,
                dev_type='type-PCI', parent_addr=None, extra_info={},
                status='available', request_id=None,
                dev_id='pci_%s' % addr.replace(':', '_').replace('.', '_'),
                label='label_%s_%s' % (GPU_VENDOR, GPU_PRODUCT)))
    return stats.to_device_pools_obj()


def _service(profile, now):
    return {'id': 1, 'host': profile.name, 'binary': 'nova-compute',
            'topic': 'compute', 'disabled': profile.disabled,
            'disabled_reason': 'maintenance' if profile.disabled else None,
            'forced_down': False, 'last_seen_up': now, 'created_at': now,
            'updated_at': now, 'report_count': 1, 'version': 70}


@functools.lru_cache(maxsize=None)
def _reported(gpus, gpus_used, pcpus_pinned, ours):
    """What a compute host of this shape reports, shared by every host of
    the shape (``HostState.update()`` copies it into objects of its own):
    the NUMA topology as the JSON string ``ComputeNode.numa_topology``
    holds, ``pci_device_pools`` and ``stats``."""
    from nova import objects

    shape = HostProfile('shape', 'shape', gpus, gpus_used, pcpus_pinned)
    topology = numa_topology(shape, markers=ours)
    if ours:
        pools = objects.PciDevicePoolList(objects=[])
        stats = host_stats.encode(locality_groups(shape))
    else:
        pools = nova_pci_pools(shape, topology)
        stats = {}
    return topology._to_json(), pools, stats


def _compute_node(profile, ours, now):
    from nova import objects

    topology, pools, stats = _reported(profile.gpus, profile.gpus_used,
                                       profile.pcpus_pinned, ours)
    vcpus = NODES * 2 * CORES_PER_NODE
    memory_mb = NODES * MEMORY_MB_PER_NODE
    return objects.ComputeNode(
        id=1, uuid=profile.uuid, host=profile.name,
        hypervisor_hostname=profile.name, hypervisor_type='QEMU',
        hypervisor_version=9002000, host_ip='192.0.2.1', cpu_info='{}',
        vcpus=vcpus, vcpus_used=sum(profile.pcpus_pinned),
        memory_mb=memory_mb, free_ram_mb=memory_mb - 4096,
        local_gb=2000, local_gb_used=0, free_disk_gb=2000,
        disk_available_least=2000, numa_topology=topology,
        pci_device_pools=pools, stats=dict(stats), supported_hv_specs=[],
        metrics='[]', cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0, updated_at=now, running_vms=0,
        current_workload=0)


def _host_state(profile, ours, now):
    from nova.scheduler import host_manager

    host = host_manager.HostState(profile.name, profile.name, 'cell1')
    host.update(compute=_compute_node(profile, ours, now),
                service=_service(profile, now), aggregates=[], inst_dict={})
    return host


def nova_host_state(profile, now=None):
    """A real ``HostState`` as Nova's scheduler holds it for *profile* with
    Nova's own PCI tracking (``[pci] device_spec``, no PCI in Placement)."""
    return _host_state(profile, False, now or _utcnow())


def ours_host_state(profile, now=None):
    """A real ``HostState`` for *profile* as cyborg-nova reports it: no Nova
    PCI pools; the accelerator summary in ``stats``."""
    return _host_state(profile, True, now or _utcnow())


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# -- Placement ----------------------------------------------------------------

def _root_resources(request):
    return {orc.PCPU if request.dedicated else orc.VCPU: request.vcpus,
            orc.MEMORY_MB: request.memory_mb, orc.DISK_GB: request.root_gb}


def _root_fits(profile, request):
    """Placement's view of the root provider: enough PCPU (or VCPU)."""
    if request.dedicated:
        return (sum(profile.pcpus_free(n) for n in range(NODES)) >=
                request.vcpus)
    return True


def nova_candidates(profile, request):
    """Allocation candidates for Nova's legacy PCI tracking: GPUs are not in
    Placement, so every host with room gets one root-only candidate."""
    if not _root_fits(profile, request):
        return []
    root = profile.uuid
    return [{'allocations': {root: {'resources': _root_resources(request)}},
             'mappings': {'': [root]}}]


def ours_candidates(profile, request):
    """Allocation candidates for ``resources:PGPU=1`` over cyborg-nova's
    per-NUMA-node providers: one per provider with a free GPU (none for a
    host without; Placement would not return such a host at all)."""
    if not _root_fits(profile, request):
        return []
    root = profile.uuid
    out = []
    for group in locality_groups(profile):
        if group.free < request.gpus:
            continue
        rp = inventory.provider_uuid(root, group.key.suffix)
        out.append({
            'allocations': {
                rp: {'resources': {group.key.resource_class: request.gpus}},
                root: {'resources': _root_resources(request)}},
            'mappings': {'': [rp, root]}})
    return out
