"""Check (not a test): our NVML code against a real NVIDIA GPU.

Run on a host where ``nvmlInit`` works (it says so and exits 0 elsewhere)::

    OS_NOVA_DISABLE_EVENTLET_PATCHING=1 \\
        python -m cyborg_nova.tests.bench.real_gpu [--load-seconds 6]

Three parts, each printing what it saw:

1. **Fidelity of the fake.**  The adapter :class:`cyborg_nova.nvml.Nvml`
   is driven once with the real ``pynvml`` and once with the fake built
   from the recorded H100 answers (:func:`fake_nvml.from_capture`); for
   every call the adapter makes, the kind of answer (type, fields, error
   class) must be the same.  Values may differ (another GPU, another
   moment); shapes must not, or the unit tests prove nothing about real
   hosts.  Exit status 1 when a shape differs.
2. **Discovery and health** through :class:`~cyborg_nova.drivers.nvidia.
   NvidiaDriver` on this host's ``/sys``: what the driver reports.
3. **Load readings**: the driver's :meth:`utilization` sampled every
   250 ms while the GPU is idle, while a process multiplies matrices on it
   (PyTorch, when installed), and after; this is the reading the spread
   weigher and the vGPU parent choice act on.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from oslo_config import cfg

from cyborg_nova import conf as conf_mod
from cyborg_nova.drivers import base
from cyborg_nova.drivers import nvidia
from cyborg_nova import nvml as nvml_mod
from cyborg_nova.tests.fixtures import fake_nvml

#: The adapter's calls, as ``(pynvml function, extra arguments)``; the
#: handle is the first argument of each.
CALLS = (
    ('nvmlDeviceGetName', ()),
    ('nvmlDeviceGetUUID', ()),
    ('nvmlDeviceGetMemoryInfo', ()),
    ('nvmlDeviceGetCudaComputeCapability', ()),
    ('nvmlDeviceGetMigMode', ()),
    ('nvmlDeviceGetUtilizationRates', ()),
    ('nvmlDeviceGetRemappedRows', ()),
    ('nvmlDeviceGetRetiredPagesPendingStatus', ()),
    ('nvmlDeviceGetSupportedEventTypes', ()),
    ('nvmlDeviceGetNvLinkState', (0,)),
)

LOAD_PROGRAM = r'''
import sys, time, torch
a = torch.randn(8192, 8192, device='cuda', dtype=torch.bfloat16)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(20):
        b = a @ a
    torch.cuda.synchronize()
'''


def _conf():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[])
    return conf


def shape(value):
    """What kind of answer *value* is, without its value."""
    if isinstance(value, BaseException):
        return 'raises %s' % type(value).__name__
    if isinstance(value, (tuple, list)):
        return '%s[%s]' % (type(value).__name__,
                           ', '.join(shape(v) for v in value))
    fields = getattr(value, '_fields_', None)
    if fields:
        return '%s{%s}' % (type(value).__name__,
                           ', '.join(f[0] for f in fields))
    return type(value).__name__


def call_shapes(module):
    """``{call: shape}`` for the first GPU *module* lists."""
    module.nvmlInit()
    try:
        handle = module.nvmlDeviceGetHandleByIndex(0)
        found = {}
        for name, extra in CALLS:
            try:
                found[name] = shape(getattr(module, name)(handle, *extra))
            except module.NVMLError as exc:
                found[name] = shape(exc)
        try:
            found['nvmlDeviceGetTotalEccErrors'] = shape(
                module.nvmlDeviceGetTotalEccErrors(
                    handle, module.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                    module.NVML_VOLATILE_ECC))
        except module.NVMLError as exc:
            found['nvmlDeviceGetTotalEccErrors'] = shape(exc)
        return found
    finally:
        module.nvmlShutdown()


def fidelity(real_module):
    print('== 1. fake NVML (recorded H100) vs real NVML: answer shapes')
    real = call_shapes(real_module)
    fake = call_shapes(fake_nvml.from_capture())
    differ = 0
    for name in sorted(real):
        same = real[name] == fake[name]
        differ += not same
        print('  %-40s %s %s' % (name, 'same ' if same else 'DIFFER',
                                 real[name] if same else
                                 'real=%s fake=%s' % (real[name],
                                                      fake[name])))
    print('  %d of %d calls answer alike' % (len(real) - differ, len(real)))
    return differ


def driver_report(drv):
    print('== 2. NvidiaDriver on this host\'s /sys')
    start = time.perf_counter()
    devices = drv.discover()
    print('  discover: %.1f ms, %d devices, degraded: %s' % (
        (time.perf_counter() - start) * 1e3, len(devices),
        drv.degraded or 'no'))
    gpus = [d for d in devices
            if d.capabilities.get('health_source') == 'nvml']
    for dev in devices:
        print('  %s %s numa=%s (%s) iommu=%s kernel driver=%s rc=%s '
              'traits=%s' % (dev.address, dev.name, dev.numa_node,
                             dev.numa_source, dev.iommu_group,
                             dev.kernel_driver, dev.resource_class,
                             sorted(dev.traits)))
        if dev.reasons:
            print('    not assignable: %s' % '; '.join(dev.reasons))
        caps = {k: v for k, v in dev.capabilities.items()
                if k in ('memory_mb', 'uuid', 'mig_mode', 'health_source',
                         'cuda_capability', 'nvlinks')}
        print('    capabilities: %s' % caps)
        if dev in gpus:
            health = drv.health(dev)
            print('    health: %s%s' % (
                'healthy' if health.healthy else 'UNHEALTHY',
                '' if health.healthy else ' (%s)' % health.reason))
    return gpus


def sample(drv, gpu, seconds, label):
    values = []
    end = time.time() + seconds
    while time.time() < end:
        util = drv.utilization(gpu)
        values.append(util)
        time.sleep(0.25)
    compute = [u.compute_percent for u in values if u is not None]
    memory = [u.memory_percent for u in values if u is not None]
    print('  %-8s %2d samples  compute %% %s  (median %s)  memory %% '
          'median %s' % (
              label, len(values), ' '.join('%.0f' % c for c in compute),
              '%.0f' % statistics.median(compute) if compute else '-',
              '%.1f' % statistics.median(memory) if memory else '-'))
    return compute


def load_readings(drv, gpu, load_seconds):
    print('== 3. utilization through the driver, every 250 ms')
    sample(drv, gpu, 2, 'idle')
    try:
        import torch  # noqa: F401
    except ImportError:
        print('  (no PyTorch here: no load to apply)')
        return
    proc = subprocess.Popen([sys.executable, '-c', LOAD_PROGRAM,
                             str(load_seconds + 3)])
    try:
        time.sleep(3)           # CUDA context start-up
        sample(drv, gpu, load_seconds, 'loaded')
    finally:
        proc.wait()
    sample(drv, gpu, 2, 'after')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--load-seconds', type=float, default=6)
    args = parser.parse_args(argv)

    probe = nvml_mod.Nvml(None)
    if not probe.start():
        print('no usable NVML here (%s): nothing to check' % probe.problem)
        return 0
    probe.shutdown()
    import pynvml
    print('pynvml from %s; driver %s' % (
        os.path.dirname(pynvml.__file__), _driver_version(pynvml)))

    differ = fidelity(pynvml)
    drv = nvidia.NvidiaDriver(base.HostContext(sysfs_root='/sys',
                                               conf=_conf()))
    gpus = driver_report(drv)
    if gpus:
        load_readings(drv, gpus[0], args.load_seconds)
    return 1 if differ else 0


def _driver_version(module):
    module.nvmlInit()
    try:
        return module.nvmlSystemGetDriverVersion()
    finally:
        module.nvmlShutdown()


if __name__ == '__main__':
    sys.exit(main())
