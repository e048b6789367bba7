"""The NVML adapter (``cyborg_nova.nvml``) and the fake NVML it is tested
with (``cyborg_nova.tests.fixtures.fake_nvml``)."""

import os
import subprocess
import sys
from unittest import mock

import fixtures
import pynvml
import testscenarios
import testtools

from cyborg_nova import nvml as nvml_mod
from cyborg_nova.policy import gpu_health
from cyborg_nova.sysfs import host as sysfs_host
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts

H100 = '0000:00:06.0'
SWITCHES = tuple(a.lower() for a in fake_nvml.DGX_NVSWITCH_BUS_IDS)


def started(fake):
    nvml = nvml_mod.Nvml(fake)
    assert nvml.start()
    return nvml


class BusIdTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('NVML form, as bytes from the real struct',
         dict(bus_id=b'00000000:00:06.0', address='0000:00:06.0')),
        ('NVML form, upper case',
         dict(bus_id='00000000:3B:00.0', address='0000:3b:00.0')),
        ('legacy form', dict(bus_id='0000:AF:00.0', address='0000:af:00.0')),
        ('non-zero domain', dict(bus_id='00000001:c1:00.0',
                                 address='0001:c1:00.0')),
    ]

    def test_normalize(self):
        self.assertEqual(self.address, nvml_mod.normalize_bus_id(self.bus_id))


class StartTest(testtools.TestCase):

    def test_starts_once(self):
        fake = fake_nvml.from_capture()
        nvml = nvml_mod.Nvml(fake)
        self.assertTrue(nvml.start())
        self.assertTrue(nvml.start())
        self.assertEqual(1, fake.init_count)
        self.assertIsNone(nvml.problem)

    def test_missing_library_is_a_clean_result(self):
        nvml = nvml_mod.Nvml(fake_nvml.missing_library())
        self.assertFalse(nvml.start())
        self.assertTrue(nvml.problem.startswith(
            'NVML library not found: NVML Shared Library Not Found '
            '(NVMLError_LibraryNotFound)'), nvml.problem)

    def test_driver_not_loaded_is_a_clean_result(self):
        nvml = nvml_mod.Nvml(fake_nvml.missing_library(
            'NVMLError_DriverNotLoaded'))
        self.assertFalse(nvml.start())
        self.assertIn('NVML library not found: Driver Not Loaded',
                      nvml.problem)

    def test_other_init_failure_is_named(self):
        nvml = nvml_mod.Nvml(fake_nvml.missing_library(
            'NVMLError_NoPermission'))
        self.assertFalse(nvml.start())
        self.assertEqual('NVML failed to initialise: Insufficient Permissions '
                         '(NVMLError_NoPermission)', nvml.problem)

    def test_a_stand_in_that_refuses_to_start(self):
        class StandIn(object):
            """Only what a module that refuses needs (the discover command
            passes one for a sysfs tree that is not this host's)."""
            class NVMLError(Exception):
                pass

            def nvmlInit(self):
                raise self.NVMLError('not this host')

        nvml = nvml_mod.Nvml(StandIn())
        self.assertFalse(nvml.start())
        self.assertEqual('NVML failed to initialise: not this host '
                         '(NVMLError)', nvml.problem)

    def test_missing_pynvml_module_is_a_clean_result(self):
        nvml = nvml_mod.Nvml(None)
        with mock.patch.object(nvml_mod.importlib, 'import_module',
                               side_effect=ImportError('No module named '
                                                       "'pynvml'")):
            self.assertFalse(nvml.start())
        self.assertIn('nvidia-ml-py', nvml.problem)

    def test_pynvml_is_imported_only_when_needed(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))))
        code = ('import sys; import cyborg_nova.nvml, '
                'cyborg_nova.drivers.nvidia; print("pynvml" in sys.modules)')
        out = subprocess.run([sys.executable, '-c', code], cwd=root,
                             env=dict(os.environ, PYTHONPATH=root),
                             stdout=subprocess.PIPE, text=True, check=True)
        self.assertEqual('False', out.stdout.strip())

    def test_shutdown_frees_events_and_nvml(self):
        fake = fake_nvml.from_capture()
        nvml = started(fake)
        nvml.describe(H100)
        nvml.shutdown()
        self.assertEqual(0, fake.init_count)
        self.assertTrue(all(s.freed for s in fake.event_sets))


class DescribeTest(testtools.TestCase):

    def test_captured_h100(self):
        info = started(fake_nvml.from_capture()).describe(H100)
        self.assertEqual(nvml_mod.GpuInfo(
            name='NVIDIA H100 80GB HBM3',
            uuid='GPU-8ad4f6e1-5cdc-f047-fa32-f0f1c1ab14aa',
            memory_total=85520809984, cuda_capability=(9, 0),
            mig_mode=(0, 0), nvlinks=()), info)

    def test_gpu_nvml_does_not_list(self):
        self.assertIsNone(
            started(fake_nvml.from_capture()).describe('0000:00:05.0'))

    def test_lost_gpu(self):
        fake = fake_nvml.from_capture()
        fake.fail_device(H100)
        info = started(fake).describe(H100)
        self.assertEqual('nvmlDeviceGetHandleByPciBusId: GPU is lost',
                         info.lost)

    def test_gpu_lost_after_lookup(self):
        fake = fake_nvml.from_capture()
        nvml = started(fake)
        nvml.handle(H100, [])
        fake.fail_device(H100, 'NVMLError_ResetRequired')
        info = nvml.describe(H100)
        self.assertEqual('nvmlDeviceGetMemoryInfo: GPU requires restart',
                         info.lost)

    def test_one_failing_call_is_an_error_string(self):
        fake = fake_nvml.from_capture()
        fake.set_answer(H100, 'memory',
                        {'error': 'NVMLError_Unknown: Unknown Error'})
        info = started(fake).describe(H100)
        self.assertIsNone(info.memory_total)
        self.assertEqual('NVIDIA H100 80GB HBM3', info.name)
        self.assertEqual(('NVML nvmlDeviceGetMemoryInfo failed for '
                          '0000:00:06.0: Unknown Error',), info.errors)

    def test_failed_lookup_is_reported(self):
        fake = fake_nvml.from_capture()
        fake.fail_device(H100, 'NVMLError_NoPermission')
        info = started(fake).describe(H100)
        self.assertFalse(info.listed)
        self.assertEqual(('NVML nvmlDeviceGetHandleByPciBusId failed for '
                          '0000:00:06.0: Insufficient Permissions',),
                         info.errors)

    def test_dgx_links_reach_nvswitches(self):
        info = started(fake_nvml.dgx_h100()).describe(
            '0000:03:00.0', fake_nvml.DGX_BUS_IDS)
        self.assertEqual(18, len(info.nvlinks))
        self.assertTrue(all(link.remote_is_switch for link in info.nvlinks))
        per_switch = [sum(1 for link in info.nvlinks
                          if link.remote_address == s) for s in SWITCHES]
        self.assertEqual([5, 4, 4, 5], per_switch)

    def test_bridged_pairs_link_to_the_partner(self):
        info = started(fake_nvml.pcie_nvlink_pairs()).describe(
            '0000:07:00.0', fake_nvml.PAIR_BUS_IDS)
        self.assertEqual(12, len(info.nvlinks))
        self.assertEqual({('0000:08:00.0', False)},
                         {(link.remote_address, link.remote_is_switch)
                          for link in info.nvlinks})

    def test_remote_type_unknown_falls_back_to_known_gpus(self):
        fake = fake_nvml.pcie_nvlink_pairs()
        for remote in fake.by_address['0000:03:00.0'].answers[
                'nvlink_remote'].values():
            del remote['type']
        nvml = started(fake)
        as_gpu = nvml.describe('0000:03:00.0', fake_nvml.PAIR_BUS_IDS)
        self.assertEqual({False}, {link.remote_is_switch
                                   for link in as_gpu.nvlinks})
        nvml = started(fake)
        alone = nvml.describe('0000:03:00.0', ['0000:03:00.0'])
        self.assertEqual({True}, {link.remote_is_switch
                                  for link in alone.nvlinks})


class ReadingsTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.from_capture()
        self.nvml = started(self.fake)

    def test_captured_h100(self):
        readings, errors = self.nvml.readings(H100)
        self.assertEqual(gpu_health.Readings(
            ecc_uncorrected_volatile=0, remapped_rows_pending=False,
            remapped_rows_failure=False, retired_pages_pending=None),
            readings)
        self.assertEqual([], errors)

    def test_changed_readings(self):
        self.fake.set_answer(H100, 'ecc_uncorrected_volatile', 2)
        self.fake.set_answer(H100, 'remapped_rows', [0, 1, 1, 0])
        readings, _ = self.nvml.readings(H100)
        self.assertEqual(2, readings.ecc_uncorrected_volatile)
        self.assertTrue(readings.remapped_rows_pending)
        self.assertFalse(readings.remapped_rows_failure)

    def test_lost(self):
        self.nvml.readings(H100)
        self.fake.fail_device(H100)
        readings, _ = self.nvml.readings(H100)
        self.assertEqual('nvmlDeviceGetTotalEccErrors: GPU is lost',
                         readings.lost)

    def test_not_listed(self):
        self.assertEqual((None, []), self.nvml.readings('0000:00:05.0'))

    def test_function_the_module_lacks_is_not_supported(self):
        self.fake.nvmlDeviceGetRemappedRows = None      # an older pynvml
        readings, errors = self.nvml.readings(H100)
        self.assertIsNone(readings.remapped_rows_pending)
        self.assertEqual([], errors)

    def test_not_supported_is_asked_once(self):
        with mock.patch.object(
                self.fake, 'nvmlDeviceGetRetiredPagesPendingStatus',
                wraps=self.fake.nvmlDeviceGetRetiredPagesPendingStatus) as m:
            for _ in range(3):
                self.nvml.readings(H100)
        self.assertEqual(1, m.call_count)

    def test_utilization(self):
        util = self.nvml.utilization(H100)
        self.assertEqual(0.0, util.compute_percent)
        self.assertAlmostEqual(100.0 * 503316480 / 85520809984,
                               util.memory_percent)
        self.fake.set_answer(H100, 'utilization', {'gpu': 75, 'memory': 20})
        self.assertEqual(75.0, self.nvml.utilization(H100).compute_percent)

    def test_utilization_of_a_lost_gpu_is_unknown(self):
        self.fake.fail_device(H100)
        self.assertIsNone(self.nvml.utilization(H100))


class EventsTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.dgx_h100()
        self.nvml = started(self.fake)
        for address in fake_nvml.DGX_BUS_IDS:
            self.nvml.describe(address, fake_nvml.DGX_BUS_IDS)

    def test_no_event_does_not_wait(self):
        with mock.patch.object(self.fake, 'nvmlEventSetWait_v2',
                               wraps=self.fake.nvmlEventSetWait_v2) as m:
            self.assertEqual({}, self.nvml.events())
        m.assert_called_once_with(mock.ANY, 0)

    def test_events_reach_their_gpu(self):
        self.fake.inject_xid('0000:84:00.0', 79)
        self.fake.inject_event('0000:03:00.0',
                               pynvml.nvmlEventTypeDoubleBitEccError)
        found = self.nvml.events()
        self.assertEqual(['0000:03:00.0', '0000:84:00.0'], sorted(found))
        self.assertEqual([(gpu_health.XID, 79)],
                         [(e.kind, e.value) for e in found['0000:84:00.0']])
        self.assertEqual(gpu_health.DOUBLE_BIT_ECC,
                         found['0000:03:00.0'][0].kind)
        self.assertEqual({}, self.nvml.events())

    def test_registers_only_supported_event_types(self):
        masks = self.fake.event_sets[0].masks
        self.assertEqual(set(fake_nvml.DGX_BUS_IDS), set(masks))
        self.assertEqual(pynvml.nvmlEventTypeXidCriticalError |
                         pynvml.nvmlEventTypeDoubleBitEccError |
                         pynvml.nvmlEventTypeGpuUnavailableError,
                         masks['0000:03:00.0'])

    def test_a_storm_is_read_in_bounded_batches(self):
        for _ in range(nvml_mod.MAX_EVENTS_PER_POLL + 5):
            self.fake.inject_xid('0000:03:00.0', 92)
        self.assertEqual(nvml_mod.MAX_EVENTS_PER_POLL,
                         len(self.nvml.events()['0000:03:00.0']))
        self.assertEqual(5, len(self.nvml.events()['0000:03:00.0']))


class FakeNvmlTest(testtools.TestCase):
    """The fake answers like the real module."""

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.from_capture()
        self.fake.nvmlInit()
        self.handle = self.fake.nvmlDeviceGetHandleByIndex(0)

    def test_real_structs(self):
        pci = self.fake.nvmlDeviceGetPciInfo_v3(self.handle)
        self.assertIsInstance(pci, pynvml.nvmlPciInfo_t)
        # nvidia-ml-py 13 structs decode char arrays on access.
        self.assertEqual('00000000:00:06.0', pci.busId)
        self.assertEqual(0x233010de, pci.pciDeviceId)
        memory = self.fake.nvmlDeviceGetMemoryInfo(self.handle)
        self.assertIsInstance(memory, pynvml.c_nvmlMemory_t)
        self.assertEqual((85520809984, 85017493504, 503316480),
                         (memory.total, memory.free, memory.used))
        util = self.fake.nvmlDeviceGetUtilizationRates(self.handle)
        self.assertEqual((0, 0), (util.gpu, util.memory))
        self.assertEqual((9, 0), self.fake.nvmlDeviceGetCudaComputeCapability(
            self.handle))

    def test_real_errors_with_real_codes(self):
        error = self.assertRaises(
            pynvml.NVMLError,
            self.fake.nvmlDeviceGetRetiredPagesPendingStatus, self.handle)
        self.assertIsInstance(error, pynvml.NVMLError_NotSupported)
        self.assertEqual(pynvml.NVML_ERROR_NOT_SUPPORTED, error.value)
        self.assertRaises(pynvml.NVMLError_InvalidArgument,
                          self.fake.nvmlDeviceGetNvLinkState, self.handle, 18)
        self.assertRaises(pynvml.NVMLError_NotSupported,
                          self.fake.nvmlDeviceGetNvLinkState, self.handle, 0)
        self.assertRaises(pynvml.NVMLError_Timeout,
                          self.fake.nvmlEventSetWait_v2,
                          self.fake.nvmlEventSetCreate(), 0)

    def test_uninitialised(self):
        fake = fake_nvml.from_capture()
        self.assertRaises(pynvml.NVMLError_Uninitialized,
                          fake.nvmlDeviceGetCount)

    def test_missing_library(self):
        fake = fake_nvml.missing_library()
        error = self.assertRaises(pynvml.NVMLError, fake.nvmlInit)
        self.assertEqual(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, error.value)

    def test_events_need_a_registration(self):
        self.assertRaises(ValueError, self.fake.inject_xid, H100, 79)

    def test_synthetic_machines_match_the_synthetic_sysfs_host(self):
        root = self.useFixture(fixtures.TempDir()).path
        hosts.pcie_8gpu_2socket(root)
        host = sysfs_host.SysfsHost(root)
        gpus = tuple(a for a in host.pci_addresses()
                     if host.class_of(a).startswith('03'))
        self.assertEqual(fake_nvml.DGX_BUS_IDS, gpus)
        self.assertEqual(gpus[:4], fake_nvml.PAIR_BUS_IDS)
        for factory in (fake_nvml.dgx_h100, fake_nvml.pcie_nvlink_pairs):
            fake = factory()
            fake.nvmlInit()
            for address in factory.__defaults__[0]:
                handle = fake.nvmlDeviceGetHandleByPciBusId(address)
                self.assertEqual(
                    fake_nvml.nvml_bus_id(address),
                    fake.nvmlDeviceGetPciInfo_v3(handle).busId)
