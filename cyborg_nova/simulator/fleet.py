"""The fleet file: which hosts, with which CPUs, memory and GPUs per NUMA
node.

::

    hosts:
      - name: gpu             # hosts gpu-000, gpu-001, ...
        count: 16
        cpu_allocation_ratio: 1.0    # VCPU inventory per shared CPU
        numa_nodes:
          - {shared_cpus: 16, dedicated_cpus: 16, memory_gb: 256,
             gpus: 4, pcie_switches: 2}
          - {shared_cpus: 16, dedicated_cpus: 16, memory_gb: 256,
             gpus: 4, pcie_switches: 2}

``pcie_switches`` (default 1) splits a node's GPUs evenly over that many
PCIe switches; ``nvlink_islands`` (default 0: none) groups them into that
many NVLink islands instead.
"""

import dataclasses

from cyborg_nova.simulator import yamlfile


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    shared_cpus: int
    dedicated_cpus: int
    memory_mb: int
    gpus: int = 0
    pcie_switches: int = 1
    nvlink_islands: int = 0


@dataclasses.dataclass(frozen=True)
class HostSpec:
    name: str
    nodes: tuple
    cpu_allocation_ratio: float = 1.0

    @property
    def gpus(self):
        return sum(n.gpus for n in self.nodes)


_HOST_FIELDS = {'name', 'count', 'numa_nodes', 'cpu_allocation_ratio'}
_NODE_FIELDS = {'shared_cpus', 'dedicated_cpus', 'memory_gb', 'gpus',
                'pcie_switches', 'nvlink_islands'}


def load(path):
    """The hosts of the fleet file at *path*, as :class:`HostSpec` s.

    :raises SpecError: naming file, line and field.
    """
    root = yamlfile.load(path)
    top = root.mapping({'hosts'})
    entries = yamlfile.required(top, 'hosts', root).sequence()
    if not entries:
        raise top['hosts'].error('no hosts: list at least one')
    hosts, names = [], set()
    for entry in entries:
        fields = entry.mapping(_HOST_FIELDS)
        prefix = yamlfile.required(fields, 'name', entry).string()
        count = fields['count'].integer(1) if 'count' in fields else 1
        ratio = (fields['cpu_allocation_ratio'].number(0.1)
                 if 'cpu_allocation_ratio' in fields else 1.0)
        node_list = yamlfile.required(fields, 'numa_nodes', entry).sequence()
        if not node_list:
            raise fields['numa_nodes'].error('no NUMA nodes: list one or '
                                             'more')
        nodes = tuple(_node(n) for n in node_list)
        for i in range(count):
            name = prefix if count == 1 else '%s-%03d' % (prefix, i)
            if name in names:
                raise fields['name'].error(
                    'host name %s is used twice: give each entry its own '
                    'name' % name)
            names.add(name)
            hosts.append(HostSpec(name, nodes, ratio))
    return hosts


def _node(node):
    f = node.mapping(_NODE_FIELDS)
    spec = NodeSpec(
        shared_cpus=yamlfile.required(f, 'shared_cpus', node).integer(0),
        dedicated_cpus=(f['dedicated_cpus'].integer(0)
                        if 'dedicated_cpus' in f else 0),
        memory_mb=yamlfile.required(f, 'memory_gb', node).integer(1) * 1024,
        gpus=f['gpus'].integer(0, 64) if 'gpus' in f else 0,
        pcie_switches=(f['pcie_switches'].integer(1)
                       if 'pcie_switches' in f else 1),
        nvlink_islands=(f['nvlink_islands'].integer(0)
                        if 'nvlink_islands' in f else 0))
    if spec.shared_cpus + spec.dedicated_cpus == 0:
        raise node.error('a NUMA node needs CPUs: set shared_cpus or '
                         'dedicated_cpus above 0')
    return spec
