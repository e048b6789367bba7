"""The one place that talks to NVML.

:class:`Nvml` wraps the ``pynvml`` module of nvidia-ml-py, or any object with
the same functions (tests inject :mod:`cyborg_nova.tests.fixtures.
fake_nvml`).  ``pynvml`` is imported only when no module is injected, and
only when NVML is first needed: never when the package is imported.

Error handling, so that one GPU never stops the others:

* ``nvmlInit`` failing (library missing, driver not loaded) makes NVML
  *unavailable*: :meth:`Nvml.start` returns False and :attr:`Nvml.problem`
  says why; nothing raises;
* "not supported" answers mean "no such feature here" and become ``None``;
* "GPU is lost" and "reset required" mean the GPU is unusable: the reading
  carries ``lost`` and nothing more is asked of that GPU in that call;
* any other NVML error becomes a string in the result's ``errors``.
"""

import ctypes
import dataclasses
import datetime
import importlib
import logging
from typing import Optional

from cyborg_nova import device as device_mod
from cyborg_nova.policy import gpu_health

LOG = logging.getLogger(__name__)

#: NVML errors after which nothing more can be read from a GPU.
LOST_ERRORS = ('NVMLError_GpuIsLost', 'NVMLError_ResetRequired')
#: nvmlInit errors that mean "no NVIDIA driver here", not a bug.
ABSENT_ERRORS = ('NVMLError_LibraryNotFound', 'NVMLError_DriverNotLoaded')
#: At most this many events are read per poll (an event storm must not
#: stall the caller).
MAX_EVENTS_PER_POLL = 64
#: NVLink links probed per GPU (Hopper and Blackwell have 18).
MAX_NVLINKS = 18


class GpuLost(Exception):
    """Internal: a call said the GPU is gone; stop asking it."""


@dataclasses.dataclass(frozen=True)
class NvLink:
    """One active NVLink link of a GPU and what is at its other end."""

    link: int
    remote_address: str            # '0000:04:00.0' ('' when not reported)
    remote_is_switch: Optional[bool] = None   # None: NVML did not say


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """What NVML says a GPU is (read once, at discovery)."""

    name: str = ''
    uuid: str = ''
    memory_total: Optional[int] = None        # bytes
    cuda_capability: Optional[tuple] = None   # (major, minor)
    mig_mode: Optional[tuple] = None          # (current, pending); None:
    #                                           not MIG capable
    nvlinks: tuple = ()                       # NvLink, active links only
    lost: str = ''
    errors: tuple = ()
    listed: bool = True                       # False: the lookup failed


def normalize_bus_id(bus_id):
    """NVML's ``'00000000:00:06.0'`` (bytes or str) -> ``'0000:00:06.0'``."""
    if isinstance(bus_id, bytes):
        bus_id = bus_id.decode('ascii', 'replace')
    bus_id = bus_id.strip().lower()
    domain, sep, rest = bus_id.partition(':')
    if not sep:
        return bus_id
    return '%04x:%s' % (int(domain, 16), rest) if _is_hex(domain) \
        else bus_id


def _is_hex(text):
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


class Nvml(object):
    """NVML for one host; *module* is ``pynvml`` or a fake (None: import
    ``pynvml`` when first needed)."""

    def __init__(self, module=None):
        self.module = module
        self.problem = None          # why NVML is unavailable
        self.started = False
        self._handles = {}           # address -> handle (None: not seen)
        self._addresses = {}         # handle key -> address
        self._unsupported = set()    # (address, function name)
        self._registered = set()     # addresses registered for events
        self._event_set = None

    # -- life cycle --------------------------------------------------------

    def start(self):
        """Initialise NVML once; False (and :attr:`problem`) when it is not
        usable on this host."""
        if self.started or self.problem:
            return self.started
        if self.module is None:
            try:
                self.module = importlib.import_module('pynvml')
            except ImportError as exc:
                self.problem = ('NVML library not found: the pynvml module '
                                '(nvidia-ml-py) is not installed (%s)' % exc)
                return False
        nv = self.module
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            if type(exc).__name__ in ABSENT_ERRORS:
                self.problem = ('NVML library not found: %s (%s); install '
                                'the NVIDIA driver, or ignore this on hosts '
                                'that only pass GPUs through' % (
                                    exc, type(exc).__name__))
            else:
                self.problem = 'NVML failed to initialise: %s (%s)' % (
                    exc, type(exc).__name__)
            return False
        self.started = True
        return True

    def shutdown(self):
        if not self.started:
            return
        nv = self.module
        if self._event_set is not None:
            try:
                nv.nvmlEventSetFree(self._event_set)
            except nv.NVMLError as exc:
                LOG.debug('nvmlEventSetFree failed: %s', exc)
            self._event_set = None
        try:
            nv.nvmlShutdown()
        except nv.NVMLError as exc:
            LOG.debug('nvmlShutdown failed: %s', exc)
        self.started = False
        self._handles.clear()
        self._addresses.clear()
        self._registered.clear()

    # -- calls -------------------------------------------------------------

    def _call(self, address, errors, name, *args):
        """``module.<name>(*args)``; None when not supported or failed (the
        failure is added to *errors*); raises :class:`GpuLost`.  What the
        GPU, its driver or the pynvml version lacks is not asked again."""
        if (address, name) in self._unsupported:
            return None
        nv = self.module
        function = getattr(nv, name, None)
        try:
            if function is None:
                raise nv.NVMLError_FunctionNotFound()
            return function(*args)
        except (nv.NVMLError_NotSupported, nv.NVMLError_FunctionNotFound):
            self._unsupported.add((address, name))
            return None
        except nv.NVMLError as exc:
            if type(exc).__name__ in LOST_ERRORS:
                raise GpuLost('%s: %s' % (name, exc))
            errors.append('NVML %s failed for %s: %s' % (name, address, exc))
            return None

    def handle(self, address, errors):
        """The NVML handle of the GPU at *address*, or None when NVML does
        not list it; raises :class:`GpuLost`."""
        if address in self._handles:
            return self._handles[address]
        nv = self.module
        try:
            handle = nv.nvmlDeviceGetHandleByPciBusId(address)
        except nv.NVMLError_NotFound:
            handle = None
        except nv.NVMLError as exc:
            if type(exc).__name__ in LOST_ERRORS:
                raise GpuLost('nvmlDeviceGetHandleByPciBusId: %s' % exc)
            errors.append('NVML nvmlDeviceGetHandleByPciBusId failed for '
                          '%s: %s' % (address, exc))
            return None
        self._handles[address] = handle
        if handle is not None:
            self._addresses[_handle_key(handle)] = address
            self._register_events(address, handle, errors)
        return handle

    # -- discovery ---------------------------------------------------------

    def describe(self, address, known_gpus=()):
        """:class:`GpuInfo` of the GPU at *address* (None when NVML does
        not list it).  *known_gpus* are the host's GPU addresses, used to
        tell GPU peers from NVSwitches when NVML cannot say."""
        errors = []
        try:
            handle = self.handle(address, errors)
            if handle is None:
                return GpuInfo(listed=False, errors=tuple(errors)) \
                    if errors else None

            def call(name):
                return self._call(address, errors, name, handle)

            memory = call('nvmlDeviceGetMemoryInfo')
            cc = call('nvmlDeviceGetCudaComputeCapability')
            mig = call('nvmlDeviceGetMigMode')
            info = GpuInfo(
                name=call('nvmlDeviceGetName') or '',
                uuid=call('nvmlDeviceGetUUID') or '',
                memory_total=memory.total if memory is not None else None,
                cuda_capability=tuple(cc) if cc is not None else None,
                mig_mode=tuple(mig) if mig is not None else None,
                nvlinks=self._nvlinks(address, handle, errors,
                                      set(known_gpus)))
        except GpuLost as exc:
            return GpuInfo(lost=str(exc), errors=tuple(errors))
        return dataclasses.replace(info, errors=tuple(errors))

    def _nvlinks(self, address, handle, errors, known_gpus):
        nv = self.module
        links = []
        for link in range(MAX_NVLINKS):
            try:
                active = nv.nvmlDeviceGetNvLinkState(handle, link)
            except (nv.NVMLError_NotSupported, nv.NVMLError_InvalidArgument):
                break              # no NVLink, or no more links
            except nv.NVMLError as exc:
                if type(exc).__name__ in LOST_ERRORS:
                    raise GpuLost('nvmlDeviceGetNvLinkState: %s' % exc)
                errors.append('NVML nvmlDeviceGetNvLinkState(link %d) failed '
                              'for %s: %s' % (link, address, exc))
                continue
            if active != nv.NVML_FEATURE_ENABLED:
                continue
            pci = self._call(address, errors,
                             'nvmlDeviceGetNvLinkRemotePciInfo', handle, link)
            remote = normalize_bus_id(pci.busId) if pci is not None else ''
            kind = self._call(address, errors,
                              'nvmlDeviceGetNvLinkRemoteDeviceType', handle,
                              link)
            if kind is not None:
                is_switch = kind == nv.NVML_NVLINK_DEVICE_TYPE_SWITCH
            else:
                # NCCL's rule: a remote end that is not a GPU of this host
                # is an NVSwitch (Hopper's switches may be invisible).
                is_switch = remote not in known_gpus
            links.append(NvLink(link, remote, is_switch))
        return tuple(links)

    # -- polling -----------------------------------------------------------

    def readings(self, address):
        """(:class:`~cyborg_nova.policy.gpu_health.Readings`, errors) of one
        health poll; NVML must be started."""
        errors = []
        try:
            handle = self.handle(address, errors)
            if handle is None:
                return None, errors
            nv = self.module
            ecc = self._call(address, errors, 'nvmlDeviceGetTotalEccErrors',
                             handle, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                             nv.NVML_VOLATILE_ECC)
            rows = self._call(address, errors, 'nvmlDeviceGetRemappedRows',
                              handle)
            pages = self._call(address, errors,
                               'nvmlDeviceGetRetiredPagesPendingStatus',
                               handle)
        except GpuLost as exc:
            return gpu_health.Readings(lost=str(exc)), errors
        return gpu_health.Readings(
            ecc_uncorrected_volatile=ecc,
            remapped_rows_pending=bool(rows[2]) if rows else None,
            remapped_rows_failure=bool(rows[3]) if rows else None,
            retired_pages_pending=(bool(pages) if pages is not None
                                   else None)), errors

    def utilization(self, address):
        """:class:`~cyborg_nova.device.Utilization` of one GPU (compute:
        percent of time a kernel ran; memory: percent of memory in use), or
        None when NVML cannot say."""
        errors = []
        try:
            handle = self.handle(address, errors)
            if handle is None:
                return None
            rates = self._call(address, errors,
                               'nvmlDeviceGetUtilizationRates', handle)
            memory = self._call(address, errors, 'nvmlDeviceGetMemoryInfo',
                                handle)
        except GpuLost:
            return None
        if errors:
            LOG.debug('GPU %s load: %s', address, '; '.join(errors))
        if rates is None and memory is None:
            return None
        return device_mod.Utilization(
            compute_percent=float(rates.gpu) if rates is not None else None,
            memory_percent=(100.0 * memory.used / memory.total
                            if memory is not None and memory.total else None))

    # -- events ------------------------------------------------------------

    def _register_events(self, address, handle, errors):
        if address in self._registered:
            return
        self._registered.add(address)
        nv = self.module
        wanted = (nv.nvmlEventTypeXidCriticalError |
                  nv.nvmlEventTypeDoubleBitEccError |
                  getattr(nv, 'nvmlEventTypeGpuUnavailableError', 0))
        try:
            supported = nv.nvmlDeviceGetSupportedEventTypes(handle)
            if not supported & wanted:
                return
            if self._event_set is None:
                self._event_set = nv.nvmlEventSetCreate()
            nv.nvmlDeviceRegisterEvents(handle, supported & wanted,
                                        self._event_set)
        except nv.NVMLError_NotSupported:
            return
        except nv.NVMLError as exc:
            errors.append('NVML health events unavailable for %s: %s; only '
                          'polled readings decide its health' % (address, exc))

    def events(self):
        """``{address: [Event, ...]}`` of the events waiting now (never
        blocks: NVML is asked with a zero timeout)."""
        if self._event_set is None:
            return {}
        nv = self.module
        found = {}
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                data = nv.nvmlEventSetWait_v2(self._event_set, 0)
            except nv.NVMLError_Timeout:
                break
            except nv.NVMLError as exc:
                LOG.warning('Reading NVML events failed: %s', exc)
                break
            event = self._event(data)
            if event is None:
                continue
            address = self._addresses.get(_handle_key(data.device), '')
            found.setdefault(address, []).append(event)
        return found

    def _event(self, data):
        nv = self.module
        kind = data.eventType
        if kind & nv.nvmlEventTypeXidCriticalError:
            return gpu_health.Event(gpu_health.XID, int(data.eventData),
                                    _now())
        if kind & nv.nvmlEventTypeDoubleBitEccError:
            return gpu_health.Event(gpu_health.DOUBLE_BIT_ECC, 0, _now())
        if kind & getattr(nv, 'nvmlEventTypeGpuUnavailableError', 0):
            return gpu_health.Event(gpu_health.GPU_UNAVAILABLE, 0, _now())
        return None

    def forget(self, address):
        """Drop what is cached about a GPU (after a reset it is looked up
        afresh)."""
        self._unsupported = {k for k in self._unsupported if k[0] != address}
        handle = self._handles.pop(address, None)
        if handle is not None:
            self._addresses.pop(_handle_key(handle), None)


def _handle_key(handle):
    """Something equal for two handles of one GPU: real handles are ctypes
    pointers (a new object per call, same address); fakes are objects."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return id(handle)
