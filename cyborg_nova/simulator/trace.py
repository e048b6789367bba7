"""The trace file: flavors, and servers arriving and leaving.

::

    flavors:
      gpu.1: {vcpus: 8, ram_gb: 64, gpus: 1, dedicated: true}
      cpu.m: {vcpus: 8, ram_gb: 32}
    events:                        # explicit, in order
      - {create: vm1, flavor: gpu.1}
      - {delete: vm1}
    generator:                     # or (and, after events) generated
      seed: 7
      requests: 600                # arrivals
      mix: {gpu.1: 2, cpu.m: 5}    # relative weights
      lifetime: [100, 400]         # arrivals a server lives, uniform

The result is one list of :class:`Event`: ``('create', name, flavor)`` or
``('delete', name, None)``.
"""

import dataclasses
import heapq
import random

from cyborg_nova.simulator import yamlfile


@dataclasses.dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    memory_mb: int
    gpus: int = 0
    dedicated: bool = False
    root_gb: int = 20

    @property
    def cpu_policy(self):
        return 'dedicated' if self.dedicated else 'shared'


@dataclasses.dataclass(frozen=True)
class Event:
    action: str          # 'create' or 'delete'
    server: str
    flavor: Flavor = None


_FLAVOR_FIELDS = {'vcpus', 'ram_gb', 'gpus', 'dedicated', 'disk_gb'}
_GEN_FIELDS = {'seed', 'requests', 'mix', 'lifetime'}


def load(path):
    """``(flavors, events)`` from the trace file at *path*.

    :raises SpecError: naming file, line and field.
    """
    root = yamlfile.load(path)
    top = root.mapping({'flavors', 'events', 'generator'})
    flavors = {}
    for name, node in yamlfile.required(top, 'flavors', root).mapping(
            ).items():
        f = node.mapping(_FLAVOR_FIELDS)
        flavors[name] = Flavor(
            name=name,
            vcpus=yamlfile.required(f, 'vcpus', node).integer(1),
            memory_mb=yamlfile.required(f, 'ram_gb', node).integer(1) * 1024,
            gpus=f['gpus'].integer(0, 64) if 'gpus' in f else 0,
            dedicated=f['dedicated'].boolean() if 'dedicated' in f else False,
            root_gb=f['disk_gb'].integer(0) if 'disk_gb' in f else 20)
    if not flavors:
        raise top['flavors'].error('no flavors: define at least one')
    if 'events' not in top and 'generator' not in top:
        raise root.error('neither events nor generator: give a list of '
                         'events, a generator, or both')
    events, live = [], set()
    if 'events' in top:
        for node in top['events'].sequence():
            f = node.mapping({'create', 'delete', 'flavor'})
            if ('create' in f) == ('delete' in f):
                raise node.error('an event is either create: NAME (with '
                                 'flavor:) or delete: NAME')
            if 'create' in f:
                name = f['create'].string()
                if name in live:
                    raise f['create'].error('server %s exists already' %
                                            name)
                fnode = yamlfile.required(f, 'flavor', node)
                flavor = flavors.get(fnode.string())
                if flavor is None:
                    raise fnode.error('unknown flavor %r: define it under '
                                      'flavors (known: %s)' % (
                                          fnode.string(),
                                          ', '.join(sorted(flavors))))
                live.add(name)
                events.append(Event('create', name, flavor))
            else:
                name = f['delete'].string()
                if name not in live:
                    raise f['delete'].error('server %s does not exist at '
                                            'this point' % name)
                live.discard(name)
                events.append(Event('delete', name))
    if 'generator' in top:
        events += _generate(top['generator'], flavors)
    return flavors, events


def _generate(node, flavors):
    f = node.mapping(_GEN_FIELDS)
    seed = f['seed'].integer(0) if 'seed' in f else 0
    count = yamlfile.required(f, 'requests', node).integer(1, 10 ** 6)
    mix_node = yamlfile.required(f, 'mix', node)
    mix = []
    for name, weight in mix_node.mapping().items():
        if name not in flavors:
            raise weight.error('unknown flavor: define it under flavors '
                               '(known: %s)' % ', '.join(sorted(flavors)))
        mix.append((flavors[name], weight.number(0.0)))
    if not mix or sum(w for _, w in mix) <= 0:
        raise mix_node.error('give at least one flavor a weight above 0')
    low, high = count, count
    if 'lifetime' in f:
        pair = f['lifetime'].sequence()
        if len(pair) != 2:
            raise f['lifetime'].error('expected [shortest, longest], in '
                                      'arrivals')
        low, high = pair[0].integer(1), pair[1].integer(1)
        if high < low:
            raise f['lifetime'].error('longest %d is below shortest %d' %
                                      (high, low))
    rng = random.Random(seed)
    choices = [fl for fl, _ in mix]
    weights = [w for _, w in mix]
    events, leaving = [], []
    for i in range(count):
        while leaving and leaving[0][0] <= i:
            _, name = heapq.heappop(leaving)
            events.append(Event('delete', name))
        name = 'gen-%06d' % i
        events.append(Event('create', name,
                            rng.choices(choices, weights)[0]))
        heapq.heappush(leaving, (i + rng.randint(low, high), name))
    return events
