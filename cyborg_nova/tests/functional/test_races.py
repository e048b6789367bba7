"""Many boots at once racing for the last GPUs: every GPU is handed out at
most once, Placement counts exactly the GPUs attached, and the servers that
lose fail with a clean NoValidHost.  Real API, conductor, scheduler,
Placement and computes; the requests are all posted before any is waited
for, so their scheduling and spawns interleave."""

import contextlib
import sys
import threading
import time

import fixtures
from nova import context as nova_context
from nova.scheduler.client import report

from cyborg_nova.tests.functional import gpu_base

#: Seconds every Placement call of Nova's report client waits first.  In
#: the harness Placement answers in-process without a yield, so concurrent
#: requests would be scheduled one after the other; a network's latency
#: lets them interleave as they do in a cloud (stale allocation candidates,
#: refused claims, retries).
PLACEMENT_LATENCY = 0.002


def placement_latency(test, seconds=PLACEMENT_LATENCY):
    """Make Nova's Placement client wait *seconds* before each call."""
    for name in ('get', 'put', 'post', 'delete'):
        real = getattr(report.SchedulerReportClient, name)

        def slow(self, *args, _real=real, **kwargs):
            time.sleep(seconds)
            return _real(self, *args, **kwargs)

        test.useFixture(fixtures.MonkeyPatch(
            'nova.scheduler.client.report.SchedulerReportClient.' + name,
            slow))


def patient_cell_targeting(test, attempts=10):
    """Let the harness's cell switching retry under load.

    Nova's ``CellDatabases`` fixture switches one global database between
    cells and gives up after 3 tries when other threads keep switching it
    (``RuntimeError: generator didn't yield`` in ``target_cell``): many
    servers failing at once are buried in cell0 while the others build in
    cell1.  A real cloud has a database per cell and no such limit; here
    the switch is retried (it restores the state before it gives up).
    """
    real = nova_context.target_cell

    @contextlib.contextmanager
    def target_cell(context, cell_mapping):
        for attempt in range(attempts):
            manager = real(context, cell_mapping)
            try:
                cctxt = manager.__enter__()
                break
            except RuntimeError as exc:
                if "didn't yield" not in str(exc) or attempt + 1 == attempts:
                    raise
                time.sleep(0.05 * (attempt + 1))
        try:
            yield cctxt
        except BaseException:
            if not manager.__exit__(*sys.exc_info()):
                raise
        else:
            manager.__exit__(None, None, None)

    test.useFixture(fixtures.MonkeyPatch('nova.context.target_cell',
                                         target_cell))


def libvirt_latency(test, seconds):
    """Make fake libvirt answer domain listings and definitions *seconds*
    late, as a real libvirt call through Nova's thread pool does: the
    answer is read first, and other green threads run before the caller
    sees it."""
    from nova.tests.fixtures import libvirt as fakelibvirt
    for name in ('listAllDomains', 'defineXML'):
        real = getattr(fakelibvirt.Connection, name)

        def late(self, *args, _real=real, **kwargs):
            answer = _real(self, *args, **kwargs)
            time.sleep(seconds)
            return answer

        test.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.' + name, late))


def randomize_candidates(test):
    """Placement's ``[placement] randomize_allocation_candidates = True``:
    each request gets a host's candidates in another order."""
    test.placement.fixture.conf_fixture.config(
        randomize_allocation_candidates=True, group='placement')


def boot_all(test, flavor, count, timeout=60):
    """POST *count* servers, then wait for each to end ACTIVE or ERROR.

    Returns the servers as the API shows them at the end."""
    bodies = [{'server': test._build_server(flavor_id=flavor,
                                            networks='none')}
              for _ in range(count)]
    posted = [None] * count

    def post(index):
        posted[index] = test.api.post_server(bodies[index])

    # One thread per request, as many clients would: the API handles them
    # at once and their builds interleave from the start.
    threads = [threading.Thread(target=post, args=(i,))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + timeout
    done = {}
    while len(done) < len(posted):
        for server in posted:
            if server['id'] in done:
                continue
            found = test.api.get_server(server['id'])
            if found['status'] in ('ACTIVE', 'ERROR'):
                done[server['id']] = found
        if time.monotonic() > deadline:
            raise AssertionError('servers still building after %ss: %s' % (
                timeout, sorted(set(s['id'] for s in posted) - set(done))))
        time.sleep(0.1)
    return [done[s['id']] for s in posted]


def attached(test):
    """``[(host, address)]`` of every GPU in every guest of every host."""
    pairs = []
    for host in test.computes:
        for addresses in test.driver_of(host)._guest_devices().values():
            pairs.extend((host, a) for a in addresses)
    return pairs


class TestRaceForTheLastGPUs(gpu_base.GPUTestBase):

    HOSTS = ('host1', 'host2')
    #: The GPUs of each host: NUMA node of each address.  Both on one node,
    #: so each host offers one provider of two GPUs and the compute picks
    #: which GPU each server gets: two spawns must never pick the same.
    GPU_NODE = {'0000:10:00.0': 0, '0000:20:00.0': 0}

    def assert_consistent(self, servers):
        """Each GPU in at most one guest, each ACTIVE server holding one,
        Placement counting exactly those, provider by provider, and every
        ERROR server a clean NoValidHost without an allocation."""
        active = {s['id'] for s in servers if s['status'] == 'ACTIVE'}
        for server in servers:
            if server['status'] == 'ACTIVE':
                continue
            self.assertEqual('ERROR', server['status'])
            self.assertIn('No valid host was found',
                          server['fault']['message'])
            self.assertEqual({}, self.placement.get(
                '/allocations/%s' % server['id']).body['allocations'])
        gpus = attached(self)
        self.assertEqual(len(gpus), len(set(gpus)),
                         'a GPU is in two guests: %s' % sorted(gpus))
        held = {}
        for host in self.HOSTS:
            held.update(self.driver_of(host)._guest_devices())
        self.assertEqual(active, set(held))
        self.assertEqual([1] * len(active), [len(a) for a in held.values()])
        for host in self.HOSTS:
            expected = {'%s_PGPU_10de_2330_NUMA%d' % (host, node): 0
                        for node in self.GPU_NODE.values()}
            for gpu_host, address in gpus:
                if gpu_host == host:
                    expected['%s_PGPU_10de_2330_NUMA%d' % (
                        host, self.GPU_NODE[address])] += 1
            self.assertEqual(expected, self.gpu_usage(host))

    def test_six_boots_for_four_gpus(self):
        self.flags(cores=-1, ram=-1, instances=-1, group='quota')
        placement_latency(self)
        patient_cell_targeting(self)
        for host in self.HOSTS:
            self.start_gpu_compute(host, gpu_nodes=sorted(
                self.GPU_NODE.values()))
        flavor = self.gpu_flavor(gpus=1)

        servers = boot_all(self, flavor, 6)
        self.assert_consistent(servers)
        won = sum(1 for s in servers if s['status'] == 'ACTIVE')
        self.assertGreaterEqual(won, 2)     # one per host at least

        # The race may fail more servers than it had to (Nova's scheduler
        # claims only the first allocation candidate of a host; see
        # bench_races), but it loses no GPU: those left free go to the next
        # servers, one each, and then there is none.
        for _ in range(4 - won):
            servers.append(self._create_server(flavor_id=flavor,
                                               networks='none'))
        servers.append(self._create_server(flavor_id=flavor,
                                           networks='none',
                                           expected_state='ERROR'))
        self.assert_consistent(servers)
        self.assertEqual(4, len(attached(self)))
