"""Run a trace over a fleet through the real Nova scheduler code.

Each policy keeps its own fleet state (:class:`SimHost`: plain data).
For each server created: the host states Nova's scheduler would hold
(real ``HostState`` objects, rebuilt for the hosts that changed), the
allocation candidates Placement would return, Nova's own
``SchedulerManager._get_sorted_hosts`` with the policy's filters and
weighers (those of :mod:`cyborg_nova.tests.bench.bench_scheduler`), then
the claim on the top host with Nova's own NUMA fitting:

``cyborg``
    ``resources:PGPU=N`` and ``accelerator:numa_policy=required``; one
    candidate per locality group (NUMA node) with N free GPUs; devices
    picked by :func:`cyborg_nova.policy.device_pick.pick` in the claimed
    candidate's group;
``nova``
    ``pci_passthrough:alias=gpu:N``, legacy PCI tracking (hosts carry
    ``PciDeviceStats`` of their free GPUs, Placement knows no GPU);
    devices taken by Nova's own ``PciDeviceStats.consume_requests`` on
    the cells Nova's fit chose (any node for a shared-CPU guest).
"""

import dataclasses
import datetime
import sys
import time
import uuid

import os_resource_classes as orc

from cyborg_nova import device as cn_device
from cyborg_nova.policy import device_pick
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import topology
from cyborg_nova.simulator import metrics
from cyborg_nova.tests.bench import bench_scheduler as bench
from cyborg_nova.tests.bench import hosts as bench_hosts

POLICIES = ('cyborg', 'nova')
_NS = uuid.UUID('4d3c1b0e-7a0f-4c55-9d0c-5b1f3e1a2c77')


def configure(set_override=None):
    """Nova's CONF (parsed with no file), objects and our options, as the
    bench sets them; a test passes *set_override* (a config fixture's)
    and parses nothing."""
    if set_override is None:
        import nova.conf
        nova.conf.CONF([], project='nova', default_config_files=[],
                       default_config_dirs=[])
    bench.configure(set_override)


@dataclasses.dataclass
class Server:
    name: str
    flavor: object
    host: 'SimHost'
    cells: dict            # node -> (pinned cpu ids, memory MB)
    devices: tuple         # addresses


class SimHost:
    """One host's capacity and use, plain data."""

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.uuid = str(uuid.uuid5(_NS, spec.name))
        self.devices = _devices(spec)
        self.by_address = {d.address: d for d in self.devices}
        self.used = set()
        self.pinned = {n: set() for n in range(len(spec.nodes))}
        self.cell_memory = {n: 0 for n in range(len(spec.nodes))}
        self.vcpus_used = 0
        self.pcpus_used = 0
        self.memory_used = 0
        self.plain_servers = 0
        self.version = 0
        self.cpus = _cpus(spec)

    @property
    def vcpus_total(self):
        return sum(n.shared_cpus for n in self.spec.nodes) * \
            self.spec.cpu_allocation_ratio

    @property
    def pcpus_total(self):
        return sum(n.dedicated_cpus for n in self.spec.nodes)

    @property
    def memory_total(self):
        return sum(n.memory_mb for n in self.spec.nodes)

    def use(self):
        return metrics.HostUse(
            free_gpus=len(self.devices) - len(self.used),
            free_vcpus=self.vcpus_total - self.vcpus_used,
            free_pcpus=self.pcpus_total - self.pcpus_used,
            free_memory_mb=self.memory_total - self.memory_used,
            plain_servers=self.plain_servers)

    def root_fits(self, flavor):
        """Placement's view of the root provider."""
        if self.memory_total - self.memory_used < flavor.memory_mb:
            return False
        if flavor.dedicated:
            return self.pcpus_total - self.pcpus_used >= flavor.vcpus
        return self.vcpus_total - self.vcpus_used >= flavor.vcpus

    def groups(self):
        return inventory.locality_groups(self.devices, in_use=self.used)

    def claim(self, server):
        f = server.flavor
        if f.dedicated:
            self.pcpus_used += f.vcpus
        else:
            self.vcpus_used += f.vcpus
        self.memory_used += f.memory_mb
        for node, (cpus, mem) in server.cells.items():
            self.pinned[node] |= set(cpus)
            self.cell_memory[node] += mem
        self.used |= set(server.devices)
        self.plain_servers += not f.gpus
        self.version += 1

    def release(self, server):
        f = server.flavor
        if f.dedicated:
            self.pcpus_used -= f.vcpus
        else:
            self.vcpus_used -= f.vcpus
        self.memory_used -= f.memory_mb
        for node, (cpus, mem) in server.cells.items():
            self.pinned[node] -= set(cpus)
            self.cell_memory[node] -= mem
        self.used -= set(server.devices)
        self.plain_servers -= not f.gpus
        self.version += 1


def _devices(spec):
    out = []
    for node, n in enumerate(spec.nodes):
        addrs = ['%04x:%02x:00.0' % (node, 0x10 + 2 * k)
                 for k in range(n.gpus)]
        for k, addr in enumerate(addrs):
            switch = k * n.pcie_switches // max(1, n.gpus)
            caps = {}
            if n.nvlink_islands:
                island = k * n.nvlink_islands // n.gpus
                peers = [a for j, a in enumerate(addrs) if a != addr and
                         j * n.nvlink_islands // n.gpus == island]
                caps = {'nvlink_island': '%d-%d' % (node, island),
                        'nvlink_peers': peers}
            out.append(cn_device.Device(
                address=addr, vendor_id=bench_hosts.GPU_VENDOR,
                product_id=bench_hosts.GPU_PRODUCT,
                class_id=bench_hosts.GPU_CLASS, driver='pci',
                name='H100 80GB HBM3', numa_node=node, numa_source='sysfs',
                iommu_group=node * 256 + k, kernel_driver='vfio-pci',
                pcie_path=('pci%04x:00' % node,
                           '%04x:00:%02x.0' % (node, switch + 1),
                           '%04x:%02x:00.0' % (node, 0x80 + switch)),
                capabilities=caps, reset_methods=('flr',),
                resource_class=orc.PGPU))
    return out


def _cpus(spec):
    """``{node: (shared ids, dedicated ids)}``."""
    out, base = {}, 0
    for node, n in enumerate(spec.nodes):
        shared = set(range(base, base + n.shared_cpus))
        base += n.shared_cpus
        dedicated = set(range(base, base + n.dedicated_cpus))
        base += n.dedicated_cpus
        out[node] = (shared, dedicated)
    return out


# -- Nova objects -------------------------------------------------------------

def numa_topology(host, markers):
    from nova import objects

    cells = []
    for node, n in enumerate(host.spec.nodes):
        shared, dedicated = host.cpus[node]
        mem = n.memory_mb
        cells.append(objects.NUMACell(
            id=node, socket=node, cpuset=shared, pcpuset=dedicated,
            pinned_cpus=set(host.pinned[node]),
            cpu_usage=len(host.pinned[node]), memory=mem,
            memory_usage=host.cell_memory[node],
            mempages=[objects.NUMAPagesTopology(
                size_kb=4, total=mem * 256, used=0, reserved=0)],
            siblings=[{c} for c in sorted(shared | dedicated)],
            network_metadata=objects.NetworkMetadata(
                physnets={numa_affinity.marker(node)} if markers else set(),
                tunneled=False)))
    return objects.NUMATopology(cells=cells)


def _pci_device(addr, dev):
    from nova import objects

    return objects.PciDevice(
        compute_node_id=1, address=addr, vendor_id=dev.vendor_id,
        product_id=dev.product_id, numa_node=dev.numa_node,
        dev_type='type-PCI', parent_addr=None, extra_info={},
        status='available', request_id=None,
        dev_id='pci_%s' % addr.replace(':', '_').replace('.', '_'),
        label='label_%s_%s' % (dev.vendor_id, dev.product_id))


def compute_pci_stats(host, topo):
    """A compute-side ``PciDeviceStats`` of the host's free GPUs."""
    from nova.pci import stats as pci_stats
    from nova.pci import whitelist

    stats = pci_stats.PciDeviceStats(
        topo, dev_filter=whitelist.Whitelist([bench_hosts.nova_device_spec()]))
    for dev in host.devices:
        if dev.address not in host.used:
            stats.add_device(_pci_device(dev.address, dev))
    return stats


def host_state(host, ours, now):
    from nova import objects
    from nova.scheduler import host_manager

    topo = numa_topology(host, markers=ours)
    if ours:
        pools = objects.PciDevicePoolList(objects=[])
        stats = host_stats.encode(host.groups())
    else:
        pools = compute_pci_stats(host, topo).to_device_pools_obj()
        stats = {}
    vcpus = sum(n.shared_cpus + n.dedicated_cpus for n in host.spec.nodes)
    compute = objects.ComputeNode(
        id=1, uuid=host.uuid, host=host.name, hypervisor_hostname=host.name,
        hypervisor_type='QEMU', hypervisor_version=9002000,
        host_ip='192.0.2.1', cpu_info='{}', vcpus=vcpus,
        vcpus_used=host.vcpus_used + host.pcpus_used,
        memory_mb=host.memory_total,
        free_ram_mb=host.memory_total - host.memory_used,
        local_gb=4000, local_gb_used=0, free_disk_gb=4000,
        disk_available_least=4000, numa_topology=topo._to_json(),
        pci_device_pools=pools, stats=dict(stats), supported_hv_specs=[],
        metrics='[]', cpu_allocation_ratio=host.spec.cpu_allocation_ratio,
        ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
        updated_at=now, running_vms=0, current_workload=0)
    service = {'id': 1, 'host': host.name, 'binary': 'nova-compute',
               'topic': 'compute', 'disabled': False,
               'disabled_reason': None, 'forced_down': False,
               'last_seen_up': now, 'created_at': now, 'updated_at': now,
               'report_count': 1, 'version': 70}
    state = host_manager.HostState(host.name, host.name, 'cell1')
    state.update(compute=compute, service=service, aggregates=[],
                 inst_dict={})
    return state


def _root_resources(flavor):
    return {orc.PCPU if flavor.dedicated else orc.VCPU: flavor.vcpus,
            orc.MEMORY_MB: flavor.memory_mb, orc.DISK_GB: flavor.root_gb}


def candidates(host, flavor, ours):
    """What Placement would return for the host (``[]``: not returned)."""
    if not host.root_fits(flavor):
        return []
    root = {'resources': _root_resources(flavor)}
    if not ours or not flavor.gpus:
        return [{'allocations': {host.uuid: root}, 'mappings': {'': [
            host.uuid]}}]
    out = []
    for group in host.groups():
        if group.free < flavor.gpus:
            continue
        rp = group.provider_uuid(host.uuid)
        out.append({'allocations': {
            rp: {'resources': {group.key.resource_class: flavor.gpus}},
            host.uuid: dict(root)}, 'mappings': {'': [rp, host.uuid]}})
    return out


def request_spec(flavor, ours):
    from nova import objects
    from nova.pci import request as pci_request

    specs = {}
    if flavor.dedicated:
        specs['hw:cpu_policy'] = 'dedicated'
    if flavor.gpus and ours:
        specs['resources:PGPU'] = str(flavor.gpus)
        specs['accelerator:numa_policy'] = 'required'
    elif flavor.gpus:
        specs['pci_passthrough:alias'] = '%s:%d' % (bench_hosts.PCI_ALIAS,
                                                    flavor.gpus)
    nova_flavor = bench._flavor(specs, flavor)
    if ours or not flavor.gpus:
        pci = objects.InstancePCIRequests(requests=[])
    else:
        pci = pci_request.get_pci_requests_from_flavor(nova_flavor)
    return bench._request_spec(nova_flavor, pci)


def _instance_topology(spec_obj):
    from nova.virt import hardware
    return hardware.numa_get_constraints(spec_obj.flavor,
                                         spec_obj.image)


def _cells_of(fitted, flavor):
    """``{node: (pinned cpu ids, memory MB)}`` from Nova's fit."""
    if fitted is None:
        return {}
    return {c.id: (tuple((c.cpu_pinning or {}).values()), c.memory)
            for c in fitted.cells}


# -- the run ------------------------------------------------------------------

class Simulation:
    """One policy over one fleet."""

    def __init__(self, policy, host_specs, smallest_gpu_flavor):
        self.policy = policy
        self.ours = policy == 'cyborg'
        self.hosts = [SimHost(s) for s in host_specs]
        self.total_gpus = sum(len(h.devices) for h in self.hosts)
        spec = bench.OURS if self.ours else bench.NOVA
        self.pipeline = bench.Pipeline(spec)
        self.servers = {}
        self.records = []
        self.stranded = []
        self.smallest = smallest_gpu_flavor
        self._states = {}
        self.now = datetime.datetime.now(
            datetime.timezone.utc).replace(tzinfo=None)

    def _state(self, host):
        cached = self._states.get(host.name)
        if cached is None or cached[0] != host.version:
            cached = (host.version, host_state(host, self.ours, self.now))
            self._states[host.name] = cached
        state = cached[1]
        state.limits = {}
        return state

    def event(self, ev):
        if ev.action == 'delete':
            server = self.servers.pop(ev.server, None)
            if server is not None:
                server.host.release(server)
        else:
            self.create(ev.server, ev.flavor)
        self.stranded.append(metrics.stranded_gpus(
            [h.use() for h in self.hosts], self.smallest))

    def create(self, name, flavor):
        load = (sum(len(h.used) for h in self.hosts) /
                self.total_gpus) if self.total_gpus else 0.0
        states, by_name = [], {}
        for h in self.hosts:
            cands = candidates(h, flavor, self.ours)
            if not cands:
                continue          # Placement does not return the host
            state = self._state(h)
            state.allocation_candidates = cands
            states.append(state)
            by_name[h.name] = h
        spec_obj = request_spec(flavor, self.ours)
        t0 = time.perf_counter()
        result = self.pipeline.sorted_hosts(spec_obj, states) if states \
            else []
        dt = (time.perf_counter() - t0) * 1e6
        server = None
        for state in result[:1]:
            server = self._claim(name, flavor, by_name[state.host], state,
                                 spec_obj)
        record = metrics.Record(gpus=flavor.gpus, accepted=server is not None,
                                load=load, time_us=dt)
        if server is not None:
            server.host.claim(server)
            self.servers[name] = server
            record = dataclasses.replace(
                record, aligned=self._aligned(server) if flavor.gpus
                else None,
                best_topology=getattr(server, 'best', None))
        self.records.append(record)

    def _claim(self, name, flavor, host, state, spec_obj):
        from nova.virt import hardware

        limits = state.limits.get('numa_topology')
        inst_topo = _instance_topology(spec_obj)
        free_before = [d for d in host.devices if d.address not in host.used]
        if self.ours:
            cand = state.allocation_candidates[0]
            fitted = None
            if inst_topo is not None:
                fitted = hardware.numa_fit_instance_to_host(
                    state.numa_topology, inst_topo,
                    provider_mapping=cand['mappings'], limits=limits)
                if fitted is None:
                    return None
            devices = ()
            if flavor.gpus:
                group = next(g for g in host.groups()
                             if g.provider_uuid(host.uuid) in
                             cand['allocations'])
                members = [host.by_address[a] for a in group.devices]
                chosen = device_pick.pick(members, flavor.gpus, host.used)
                devices = tuple(d.address for d in chosen)
        else:
            pci = spec_obj.pci_requests
            fitted = None
            if inst_topo is not None:
                fitted = hardware.numa_fit_instance_to_host(
                    state.numa_topology, inst_topo, provider_mapping=None,
                    limits=limits,
                    pci_requests=pci.requests if pci.requests else None,
                    pci_stats=state.pci_stats)
                if fitted is None:
                    return None
            devices = ()
            if flavor.gpus:
                stats = compute_pci_stats(host, numa_topology(host, False))
                got = stats.consume_requests(
                    pci.requests,
                    numa_cells=fitted.cells if fitted is not None else None)
                if not got:
                    return None
                devices = tuple(d.address for d in got)
        server = Server(name, flavor, host, _cells_of(fitted, flavor),
                        devices)
        if flavor.gpus > 1:
            best = topology.choose(free_before, flavor.gpus)
            mine = [host.by_address[a] for a in devices]
            server.best = (topology.worst_level(mine) <=
                           topology.worst_level(best))
        return server

    def _aligned(self, server):
        nodes = {server.host.by_address[a].numa_node
                 for a in server.devices}
        if len(server.host.spec.nodes) == 1:
            return True
        if server.flavor.dedicated:
            return bool(server.cells) and set(server.cells) == nodes
        # Shared CPUs: ours confines the vCPUs to the devices' node (the
        # NUMA policy is required); Nova's guest floats over every node.
        return self.ours and len(nodes) == 1

    def summary(self):
        gpu_hosts = [h for h in self.hosts if h.devices]
        return metrics.summarize(self.policy, self.records, self.stranded,
                                 [len(h.used) for h in gpu_hosts])


class Progress:
    """``requests done, rate, time left`` on a terminal; silent otherwise."""

    def __init__(self, total, label, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total = total
        self.label = label
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, done):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5 and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-6)
        left = (self.total - done) / rate if rate else 0
        self.stream.write('\r%s: %d/%d events, %.0f/s, %.0f s left   ' % (
            self.label, done, self.total, rate, left))
        if done >= self.total:
            self.stream.write('\n')
        self.stream.flush()


def run(policy, host_specs, events, smallest_gpu_flavor, progress=True):
    sim = Simulation(policy, host_specs, smallest_gpu_flavor)
    bar = Progress(len(events), policy) if progress else None
    for i, ev in enumerate(events, 1):
        sim.event(ev)
        if bar:
            bar.update(i)
    return sim
