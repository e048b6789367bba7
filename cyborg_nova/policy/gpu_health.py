"""Is an NVIDIA GPU healthy?  One pure decision over NVML readings.

A GPU is unhealthy when it is lost (it fell off the bus or needs a reset),
when its memory shows damage (uncorrected ECC errors since the last reset,
row remappings that are pending or failed, retired pages waiting for a
reset), or when a critical event was seen since its last reset: an XID
error the driver logged (except the application errors operators ignore)
or a double-bit ECC / GPU-unavailable event.  Events are *sticky*: the
caller keeps them (see :func:`latch`) until the GPU is reset.

Nothing here touches NVML; :mod:`cyborg_nova.nvml` reads the values.
"""

from typing import NamedTuple
from typing import Optional

from cyborg_nova import device as device_mod

#: XIDs applications cause; the NVIDIA Kubernetes device plugin ignores them.
DEFAULT_IGNORED_XIDS = (13, 31, 43, 45, 68, 109)

#: What well-known XIDs mean (NVIDIA's XID catalogue), for reasons people read.
XID_MEANINGS = {
    13: 'graphics engine exception',
    31: 'GPU memory page fault',
    32: 'invalid or corrupted push buffer stream',
    43: 'GPU stopped processing',
    45: 'preemptive cleanup, due to previous errors',
    48: 'double-bit ECC error',
    61: 'internal micro-controller breakpoint/warning',
    62: 'internal micro-controller halt',
    63: 'ECC page retirement or row remapping recording event',
    64: 'ECC page retirement or row remapping recording failure',
    68: 'video processor exception',
    69: 'graphics engine class error',
    74: 'NVLink error',
    79: 'GPU has fallen off the bus',
    92: 'high single-bit ECC error rate',
    94: 'contained ECC error',
    95: 'uncontained ECC error',
    109: 'context switch timeout',
    119: 'GSP RPC timeout',
    120: 'GSP error',
    121: 'C2C link corrected error',
    140: 'unrecovered ECC error',
}

#: Event kinds (:attr:`Event.kind`).
XID = 'xid'
DOUBLE_BIT_ECC = 'double_bit_ecc'
GPU_UNAVAILABLE = 'gpu_unavailable'

HEALTHY = device_mod.Health.ok()

_WHAT_TO_DO = ('it stays out of use until it is reset (cyborg-nova resets it '
               'when its guest releases it) or the host reboots')


class Event(NamedTuple):
    """One health event NVML delivered for a GPU."""

    kind: str                   # XID, DOUBLE_BIT_ECC or GPU_UNAVAILABLE
    value: int = 0              # the XID number for XID events
    seen_at: str = ''           # when it was read (ISO 8601, UTC)


class Readings(NamedTuple):
    """One health poll of a GPU; ``None`` means not supported or not read."""

    lost: str = ''                          # why the GPU is unreachable
    ecc_uncorrected_volatile: Optional[int] = None
    remapped_rows_pending: Optional[bool] = None
    remapped_rows_failure: Optional[bool] = None
    retired_pages_pending: Optional[bool] = None


def describe_xid(xid):
    """``79`` -> ``'XID 79 (GPU has fallen off the bus)'``."""
    meaning = XID_MEANINGS.get(xid)
    return 'XID %d (%s)' % (xid, meaning) if meaning else 'XID %d' % xid


def describe_event(event):
    if event.kind == XID:
        text = describe_xid(event.value)
    elif event.kind == DOUBLE_BIT_ECC:
        text = 'double-bit ECC error event'
    elif event.kind == GPU_UNAVAILABLE:
        text = 'GPU unavailable event'
    else:
        text = '%s event (%d)' % (event.kind, event.value)
    return '%s at %s' % (text, event.seen_at) if event.seen_at else text


def is_critical(event, ignored_xids=DEFAULT_IGNORED_XIDS):
    """Application XIDs are not; every other event is."""
    return not (event.kind == XID and event.value in ignored_xids)


def latch(held, new, ignored_xids=DEFAULT_IGNORED_XIDS):
    """The events to keep after *new* arrived: *held* plus the critical new
    ones, the first of each kind and value only (a storm of one XID stays
    one reason)."""
    kept = list(held)
    seen = {(e.kind, e.value) for e in kept}
    for event in new:
        key = (event.kind, event.value)
        if key not in seen and is_critical(event, ignored_xids):
            kept.append(event)
            seen.add(key)
    return tuple(kept)


def decide(readings, events=(), ignored_xids=DEFAULT_IGNORED_XIDS,
           max_remapped_rows_failures=0):
    """The :class:`~cyborg_nova.device.Health` of a GPU.

    *events* are the events held since its last reset (see :func:`latch`);
    ignored XIDs among them do not count.  NVML reports a failed row
    remapping as a flag, so it counts as one failure against
    *max_remapped_rows_failures*.
    """
    if readings.lost:
        return device_mod.Health.bad(
            'GPU is lost (%s): it fell off the bus or hung; reset it or '
            'reboot the host' % readings.lost)
    reasons = []
    ecc = readings.ecc_uncorrected_volatile
    if ecc:
        reasons.append('%d uncorrected ECC error%s since the last reset'
                       % (ecc, '' if ecc == 1 else 's'))
    if readings.remapped_rows_pending:
        reasons.append('row remapping pending: the GPU needs a reset to '
                       'remap the damaged memory rows')
    if int(bool(readings.remapped_rows_failure)) > max_remapped_rows_failures:
        reasons.append('row remapping failed: the memory cannot be repaired '
                       'any more; the GPU needs service')
    if readings.retired_pages_pending:
        reasons.append('retired memory pages pending: the GPU needs a reset '
                       'to retire them')
    if events:
        reasons.extend(describe_event(e) for e in events
                       if is_critical(e, ignored_xids))
    if not reasons:
        return HEALTHY
    return device_mod.Health.bad('%s; %s' % ('; '.join(reasons),
                                             _WHAT_TO_DO))
