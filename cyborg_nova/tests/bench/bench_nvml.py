"""Benchmark (not a test): what one GPU health + load poll costs.

Prints, side by side, the median microseconds per GPU of one
``NvidiaDriver.health()`` + ``NvidiaDriver.utilization()`` poll

* on the fake NVML answering as the captured H100 did;
* on the real ``pynvml``, when ``nvmlInit`` works on this host;

and of one ``nvidia-smi --query-gpu=utilization.gpu,memory.used,
temperature.gpu --format=csv,noheader`` subprocess, when ``nvidia-smi``
exists.  Takes a few seconds::

    OS_NOVA_DISABLE_EVENTLET_PATCHING=1 \\
        python -m cyborg_nova.tests.bench.bench_nvml

(without that variable the test package monkey-patches eventlet, which
slows subprocesses down; the output says which mode ran).
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from nova import monkey_patch
from oslo_config import cfg

from cyborg_nova import conf as conf_mod
from cyborg_nova.drivers import base
from cyborg_nova.drivers import nvidia
from cyborg_nova import nvml as nvml_mod
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts

SMI = ['nvidia-smi', '--query-gpu=utilization.gpu,memory.used,'
       'temperature.gpu', '--format=csv,noheader']


def _conf():
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[])
    return conf


def _median_us(func, rounds, batch):
    """Median over *rounds* of the mean time of *batch* calls, in µs."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batch):
            func()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def poll_driver(sysfs_root, nvml, rounds, batch):
    """(median µs per GPU poll, GPUs polled, note) for one host."""
    drv = nvidia.NvidiaDriver(base.HostContext(sysfs_root=sysfs_root,
                                               conf=_conf(), nvml=nvml))
    start = time.perf_counter()
    gpus = [d for d in drv.discover()
            if d.capabilities.get('health_source') == 'nvml']
    discover_ms = (time.perf_counter() - start) * 1e3
    if not gpus:
        return None, 0, drv.degraded or 'no GPU bound to nvidia'

    def poll():
        for dev in gpus:
            drv.health(dev)
            drv.utilization(dev)

    per_host = _median_us(poll, rounds, batch)
    health = drv.health(gpus[0])
    note = 'discover %.1f ms; %s: %s' % (
        discover_ms, gpus[0].name,
        'healthy' if health.healthy else health.reason)
    return per_host / len(gpus), len(gpus), note


def real_nvml_works():
    nvml = nvml_mod.Nvml(None)
    ok = nvml.start()
    problem = nvml.problem
    nvml.shutdown()
    return ok, problem


def smi_us(runs):
    samples = []
    out = ''
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(SMI, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout
        samples.append((time.perf_counter() - start) * 1e6)
    gpus = max(1, len([line for line in out.splitlines() if line.strip()]))
    return statistics.median(samples) / gpus, gpus, out.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--batch', type=int, default=400)
    parser.add_argument('--smi-runs', type=int, default=10)
    args = parser.parse_args(argv)

    print('eventlet monkey patching: %s' % (
        'on' if monkey_patch.is_patched() else 'off'))
    print('%-44s %12s %6s  %s' % ('what', 'µs per GPU', 'GPUs', 'note'))

    def row(what, us, count, note):
        print('%-44s %12s %6s  %s' % (
            what, '%.1f' % us if us is not None else '-', count, note))

    us, count, note = poll_driver(hosts.captured_host('h100-1gpu-vm'),
                                  fake_nvml.from_capture(), args.rounds,
                                  args.batch)
    row('NVML health+load poll, fake (H100 capture)', us, count, note)

    ok, problem = real_nvml_works()
    if ok:
        us, count, note = poll_driver('/sys', None, args.rounds,
                                      max(1, args.batch // 4))
        row('NVML health+load poll, real pynvml', us, count, note)
    else:
        row('NVML health+load poll, real pynvml', None, 0, problem)

    if shutil.which('nvidia-smi'):
        us, count, out = smi_us(args.smi_runs)
        row('nvidia-smi --query-gpu subprocess', us, count,
            out.splitlines()[0] if out else '')
    else:
        row('nvidia-smi --query-gpu subprocess', None, 0,
            'nvidia-smi not found')
    return 0


if __name__ == '__main__':
    sys.exit(main())
