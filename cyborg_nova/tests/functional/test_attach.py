"""Attach and detach accelerators on a running server (``cyborg-nova
attach/detach`` and :mod:`cyborg_nova.attach`), through real Nova,
Placement and compute over fake libvirt, with faults injected where a real
host can fail: libvirt refusing the attach, a concurrent change of the
server's allocation, the device vanishing after it was picked, and
nova-compute dying between the Placement claim and the attach."""

import contextlib
import io
import os
import shutil

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt

from cyborg_nova import attach
from cyborg_nova.cmd import attach as attach_cmd
from cyborg_nova.cmd import detach as detach_cmd
from cyborg_nova.cmd import main as cmd_main
from cyborg_nova.drivers import pci
from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.virt_hooks import instance_record

NODE0 = 'host1_PGPU_10de_2330_NUMA0'
NODE1 = 'host1_PGPU_10de_2330_NUMA1'
GPU0 = '0000:10:00.0'      # gpu_nodes=[0, 1]: on NUMA node 0
GPU1 = '0000:20:00.0'      # on NUMA node 1 (CPUs 4-7)


class ProcessKilled(BaseException):
    """Stands for nova-compute (or the command) dying: no ``except
    Exception`` sees it, so no rollback runs, as after a real kill."""


class InterferingPlacement(object):
    """The report client, with another writer changing the server's
    allocation (a move, a resize) just before each of our first *times*
    PUTs: only its consumer generation changes, so ours is stale."""

    def __init__(self, test, real, times, before_put=None):
        self.test = test
        self.real = real
        self.times = times
        self.before_put = before_put
        self.puts = 0

    def get(self, *args, **kwargs):
        return self.real.get(*args, **kwargs)

    def put(self, url, data, **kwargs):
        self.puts += 1
        if self.before_put is not None:
            self.before_put()
        if self.times and url.startswith('/allocations/'):
            self.times -= 1
            current = self.test.placement.get(url, version='1.28').body
            resp = self.test.placement.put(url, {
                'allocations': {
                    rp: {'resources': a['resources']}
                    for rp, a in current['allocations'].items()},
                'consumer_generation': current['consumer_generation'],
                'project_id': current['project_id'],
                'user_id': current['user_id']}, version='1.28')
            self.test.assertEqual(204, resp.status)
        return self.real.put(url, data, **kwargs)


class AttachTestBase(gpu_base.GPUTestBase):
    """Helpers of the attach tests (no tests of its own)."""

    def setUp(self):
        super().setUp()
        self.ctx = nova_context.get_admin_context()

    # -- helpers -----------------------------------------------------

    def _server_on(self, gpu_nodes=(0, 1), vcpus=2, **specs):
        self.start_gpu_compute('host1', gpu_nodes=list(gpu_nodes))
        flavor = self._create_flavor(vcpu=vcpus, memory_mb=1024,
                                     extra_spec=specs)
        return self._create_server(flavor_id=flavor, networks='none')

    def _instance(self, server):
        return objects.Instance.get_by_uuid(
            self.ctx, server['id'],
            expected_attrs=['flavor', 'numa_topology', 'system_metadata'])

    def _driver(self):
        return self.driver_of('host1')

    def _attach(self, server, resources=None, **kwargs):
        return attach.attach(self._driver(), self.ctx, self._instance(server),
                             resources or {'PGPU': 1}, **kwargs)

    def _detach(self, server, address=None):
        return attach.detach(self._driver(), self.ctx, self._instance(server),
                             address)

    def _in_guest(self, server):
        return self._driver()._guest_devices().get(server['id'], [])

    def _record(self, server):
        return instance_record.devices_on(self._instance(server), 'host1')

    def _assert_untouched(self, server, usage=None):
        """No allocation, no device in the guest, nothing recorded."""
        self.assertEqual(usage or {NODE0: 0, NODE1: 0},
                         self.gpu_usage('host1'))
        self.assertEqual([], self._in_guest(server))
        self.assertEqual([], self._record(server))

    def _fail_attach_device(self, exc, times=1):
        real = fakelibvirt.Domain.attachDeviceFlags
        calls = {'left': times}

        def attach_device(domain, xml, flags):
            if calls['left'] and xml.startswith('<hostdev'):
                calls['left'] -= 1
                raise exc
            return real(domain, xml, flags)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Domain.attachDeviceFlags',
            attach_device))


class TestAttach(AttachTestBase):

    def test_attach_survives_hard_reboot_and_detach_frees_it(self):
        server = self._server_on(gpu_nodes=[0, 1])
        self._assert_untouched(server)

        done = self._attach(server, traits=['CUSTOM_ACCEL_NUMA_NODE_1'],
                            numa_policy='required')
        self.assertTrue(done.changed)
        self.assertEqual((GPU1,), done.devices)
        self.assertIn('applied at the next rebuild', done.message)
        self.assertEqual([GPU1], self._in_guest(server))
        self.assertEqual({NODE0: 0, NODE1: 1}, self.gpu_usage('host1'))
        self.assertEqual([GPU1], self._record(server))

        # The same request again: nothing to do.
        again = self._attach(server, traits=['CUSTOM_ACCEL_NUMA_NODE_1'])
        self.assertFalse(again.changed)
        self.assertIn('already holds PGPU=1 (%s)' % GPU1, again.message)
        self.assertEqual({NODE0: 0, NODE1: 1}, self.gpu_usage('host1'))

        # The XML Nova builds again keeps the device, with the guest's
        # vCPUs and memory on its NUMA node.
        self._reboot_server(server, hard=True)
        cfg = self.last_config(server)
        self.assertEqual([GPU1], self.hostdev_addresses(cfg))
        self.assertEqual({4, 5, 6, 7}, cfg.cpuset)
        self.assertEqual([1], cfg.numatune.memory.nodeset)
        self.assertEqual([GPU1], self._in_guest(server))

        # Detach resets the device before Placement offers it again.
        resets = []
        real_uninstall = pci.PciDriver.uninstall

        def uninstall(driver, dev):
            resets.append((dev.address, self.gpu_usage('host1')[NODE1]))
            return real_uninstall(driver, dev)

        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.drivers.pci.PciDriver.uninstall', uninstall))
        gone = self._detach(server)
        self.assertTrue(gone.changed)
        self.assertEqual((GPU1,), gone.devices)
        self.assertEqual([(GPU1, 1)], resets)
        self._assert_untouched(server)
        self.assertFalse(self._detach(server, GPU1).changed)
        self._reboot_server(server, hard=True)
        self.assertEqual([], self.hostdev_addresses(self.last_config(server)))
        self._assert_untouched(server)

    def test_a_reboot_that_loaded_the_server_before_an_attach_keeps_it(self):
        # nova-compute loads the instance, then waits for the lock an
        # attach holds: the XML it builds must hold the attached device.
        server = self._server_on(gpu_nodes=[0, 1])
        stale = self._instance(server)
        self._attach(server)
        self.assertEqual([], instance_record.devices_on(stale, 'host1'))
        self._driver().reboot(self.ctx, stale, [], 'HARD')
        self.assertEqual([GPU0], self.hostdev_addresses(
            self.last_config(server)))
        self.assertEqual([GPU0], self._in_guest(server))
        self.assertEqual([GPU0], instance_record.devices_on(stale, 'host1'))

    def test_a_delete_that_loaded_the_server_before_an_attach_resets_it(self):
        server = self._server_on(gpu_nodes=[0, 1])
        stale = self._instance(server)
        self._attach(server)
        resets = []
        real_uninstall = pci.PciDriver.uninstall

        def uninstall(driver, dev):
            resets.append(dev.address)
            return real_uninstall(driver, dev)

        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.drivers.pci.PciDriver.uninstall', uninstall))
        self._driver().destroy(self.ctx, stale, [])
        self.assertEqual([GPU0], resets)
        self.assertEqual([], self._in_guest(server))

    def test_shelve_offload_says_it_releases_attached_devices(self):
        server = self._server_on(gpu_nodes=[0, 1])
        self._attach(server)
        self._shelve_server(server)
        self._assert_untouched(server)
        [line] = [line for line in self.stdlog.logger.output.splitlines()
                  if 'Shelve-offload releases accelerators' in line]
        self.assertIn('%s, added to this server with cyborg-nova attach'
                      % GPU0, line)
        self.assertIn('attach them again after unshelve', line)

    def test_evacuation_says_which_attached_devices_stay_behind(self):
        self.allow_moves()
        server = self._server_on(gpu_nodes=[0, 1])
        self._attach(server)
        self.start_gpu_compute('host2', gpu_nodes=[0])
        self.computes['host1'].stop()
        service = self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'forced_down': True})
        self._evacuate_server(server, expected_host='host2')
        [line] = [line for line in self.stdlog.logger.output.splitlines()
                  if 'beyond its flavor' in line]
        self.assertIn('held 1 accelerator(s) on host1 (%s), 1 beyond its '
                      'flavor' % GPU0, line)

    def test_cli_attach_and_detach_by_server_name(self):
        self.start_gpu_compute('host1', gpu_nodes=[1])
        plain = self._create_flavor(vcpu=2, memory_mb=1024)
        server = self._create_server(name='worker', flavor_id=plain,
                                     networks='none')
        host = attach_cmd.ComputeHost(self._driver(), self.ctx, 'host1')
        parser = cmd_main.build_parser()

        def run(argv):
            args = parser.parse_args(argv)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(err):
                if args.command == 'attach':
                    status = attach_cmd.execute(
                        host, args, attach.parse_resources(args.resources))
                else:
                    status = detach_cmd.execute(host, args)
            return status, out.getvalue(), err.getvalue()

        status, out, _ = run(['attach', 'worker', '--resources', 'PGPU=1'])
        self.assertEqual(0, status)
        self.assertIn('attached %s to server %s' % (GPU0, server['id']), out)
        self.assertEqual([GPU0], self._in_guest(server))
        status, out, _ = run(['attach', server['id'], '--resources',
                              'PGPU=1'])
        self.assertEqual(0, status)
        self.assertIn('nothing to attach', out)
        status, _, err = run(['attach', 'worker', '--resources', 'PGPU=2'])
        self.assertEqual(1, status)
        self.assertIn('has 0 free device(s)', err)
        self.assertEqual({NODE1: 1}, self.gpu_usage('host1'))
        status, _, err = run(['detach', 'worker', '0000:99:00.0'])
        self.assertEqual(1, status)
        self.assertIn('not an accelerator of this host', err)
        status, out, _ = run(['detach', 'worker', '10:00.0'])
        self.assertEqual(0, status)
        self.assertIn('detached %s' % GPU0, out)
        status, out, _ = run(['detach', 'worker'])
        self.assertEqual(0, status)
        self.assertIn('holds no accelerator that can be detached', out)
        self.assertEqual({NODE1: 0}, self.gpu_usage('host1'))
        self.assertEqual([], self._in_guest(server))

        # A device that came with the flavor stays.
        gpu = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                  networks='none')
        self.assertEqual([GPU0], self._in_guest(gpu))
        status, _, err = run(['detach', gpu['id'], GPU0])
        self.assertEqual(1, status)
        self.assertIn('came with the flavor', err)
        self.assertEqual([GPU0], self._in_guest(gpu))
        self.assertEqual({NODE1: 1}, self.gpu_usage('host1'))

    def test_libvirt_attach_error_rolls_everything_back(self):
        server = self._server_on(gpu_nodes=[0, 1])
        self._fail_attach_device(fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'internal error: unable to execute '
            'QEMU command device_add', error_code=1))
        exc = self.assertRaises(attach.AttachError, self._attach, server)
        self.assertIn('unable to execute QEMU command device_add', str(exc))
        self.assertIn('everything was rolled back', str(exc))
        self._assert_untouched(server)
        # Nothing is left held: the next try gets the same device.
        self.assertEqual((GPU0,), self._attach(server).devices)
        self.assertEqual({NODE0: 1, NODE1: 0}, self.gpu_usage('host1'))

    def test_placement_conflict_is_retried_once_then_fails_cleanly(self):
        server = self._server_on(gpu_nodes=[0, 1])
        real = self._driver().virtapi.reportclient
        kwargs = {'resources': {'PGPU': 1}}

        # Changed under us at both tries: refused, nothing changed.
        twice = InterferingPlacement(self, real, times=2)
        exc = self.assertRaises(attach.AttachError, self._attach, server,
                                report_client=twice, **kwargs)
        self.assertIn('Placement refused twice', str(exc))
        self.assertIn('consumer generation conflict', str(exc))
        self.assertEqual(2, twice.puts)
        self._assert_untouched(server)

        # Changed under us once: re-read, and the second try wins.
        once = InterferingPlacement(self, real, times=1)
        done = self._attach(server, report_client=once, **kwargs)
        self.assertEqual(2, once.puts)
        self.assertEqual((GPU0,), done.devices)
        self.assertEqual({NODE0: 1, NODE1: 0}, self.gpu_usage('host1'))
        self.assertEqual([GPU0], self._in_guest(server))

    def test_device_vanished_after_the_pick_rolls_back(self):
        server = self._server_on(gpu_nodes=[1])
        root = self._driver().accelerators._sysfs_root
        link = os.path.join(root, 'bus', 'pci', 'devices', GPU0)

        def unplug():
            # Between the pick and the attach: the device falls off the
            # bus while its allocation is being claimed.
            if os.path.lexists(link):
                shutil.rmtree(os.path.realpath(link))
                os.unlink(link)

        client = InterferingPlacement(
            self, self._driver().virtapi.reportclient, times=0,
            before_put=unplug)
        exc = self.assertRaises(attach.AttachError, self._attach, server,
                                report_client=client)
        self.assertIn('%s vanished from the host' % GPU0, str(exc))
        self.assertIn('everything was rolled back', str(exc))
        self.assertEqual(2, client.puts)     # the claim, and its release
        self._assert_untouched(server, usage={NODE1: 0})

    def test_compute_killed_between_claim_and_attach_is_healed(self):
        server = self._server_on(gpu_nodes=[0, 1])
        self._fail_attach_device(ProcessKilled())
        self.assertRaises(ProcessKilled, self._attach, server)
        # Claimed in Placement, never attached, nothing recorded.
        self.assertEqual({NODE0: 1, NODE1: 0}, self.gpu_usage('host1'))
        self.assertEqual([], self._in_guest(server))
        self.assertEqual([], self._record(server))

        self.restart_gpu_compute('host1')
        # Nova does not give back an allocation of a server that exists:
        # after the restart Placement still counts the device.
        self.assertEqual({NODE0: 1, NODE1: 0}, self.gpu_usage('host1'))

        # What heals it: reconcile, which every attach and detach of the
        # server runs first (and which nova-compute's start could run).
        plan = attach.reconcile(self._driver(), self.ctx,
                                self._instance(server))
        self.assertEqual(1, sum(plan.release.values()))
        self._assert_untouched(server)
        # And the attach then works.
        self.assertEqual((GPU0,), self._attach(server).devices)
        self.assertEqual({NODE0: 1, NODE1: 0}, self.gpu_usage('host1'))
        self.assertEqual([GPU0], self._record(server))


class TestAttachAndMoves(AttachTestBase):
    """With RPC casts as casts, as in a deployment: Nova's harness turns
    them into calls by default, and a refusal on the source host then
    reaches the conductor's task, which errors the server out."""

    CAST_AS_CALL = False

    def test_a_server_moves_only_once_attached_devices_are_detached(self):
        # A device added with attach is not in the flavor: the destination
        # would not get it, so the move is refused before anything moves.
        self.allow_moves()
        server = self._server_on(gpu_nodes=[0, 1])
        self.start_gpu_compute('host2', gpu_nodes=[0])
        self._attach(server)
        held = self._in_guest(server)
        usage = self.gpu_usage('host1')

        self.admin_api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_migration_status(server, ['error'])
        self._wait_for_action_fail_completion(
            server, 'migrate', 'compute_resize_instance')
        fault = objects.InstanceFaultList.get_by_instance_uuids(
            self.ctx, [server['id']])[0]
        self.assertIn('holds accelerators added with cyborg-nova attach '
                      '(%s)' % GPU0, fault.message)
        self.assertIn('cyborg-nova detach %s' % server['id'], fault.message)
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(held, self._in_guest(server))
        self.assertEqual(held, self._record(server))
        self.assertEqual(usage, self.gpu_usage('host1'))
        self.assertEqual({'host2_PGPU_10de_2330_NUMA0': 0},
                         self.gpu_usage('host2'))

        self._detach(server)
        server = self._migrate_server(server, api=self.admin_api)
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([], self.hostdev_addresses(self.last_config(server)))
