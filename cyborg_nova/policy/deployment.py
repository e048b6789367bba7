"""Which settings of Nova and Placement cyborg-nova needs, and what is
wrong with a deployment's: pure checks over settings already read.

Each check returns :class:`Finding` objects, worst first.  The adapters
(:mod:`cyborg_nova.deployment_check`) read the settings, log the findings
when the scheduler and nova-compute start, and print them for
``cyborg-nova check``.

What our Placement layout needs: nothing beyond Placement's defaults.  One
provider per locality group (resource class, model, NUMA node) gives a
host as many candidates as it has groups that can serve a request group,
not the ``n!/(n-k)!`` of one provider per device, so neither
``max_allocation_candidates`` nor ``allocation_candidates_generation_
strategy = breadth-first`` nor ``[workarounds]
optimize_for_wide_provider_trees`` is needed.  What helps:
``randomize_allocation_candidates = True`` (Nova's scheduler claims only
the first candidate of each host, so without it simultaneous boots aim at
the same group of a host and some fail while devices are free).  What
hurts: a ``max_allocation_candidates`` limit with the default
depth-first strategy, which returns the candidates of the first hosts only.
"""

import dataclasses

OK = 'ok'
WARNING = 'warning'
ERROR = 'error'
_RANK = {ERROR: 0, WARNING: 1, OK: 2}

#: Our weighers, by class name; ``ALL_WEIGHERS`` loads both.
OUR_WEIGHERS = ('AcceleratorStrandingWeigher', 'AcceleratorSpreadWeigher')
ALL_WEIGHERS = 'cyborg_nova.weighers.all_weighers'
COMPUTE_DRIVER = 'cyborg_nova.AcceleratedLibvirtDriver'


@dataclasses.dataclass(frozen=True)
class Finding:
    level: str              # OK, WARNING or ERROR
    setting: str            # '[placement] randomize_allocation_candidates'
    message: str            # what it means and what to do

    def __str__(self):
        return '%s: %s: %s' % (self.level.upper(), self.setting,
                               self.message)


def worst_first(findings):
    return sorted(findings, key=lambda f: _RANK[f.level])


def exit_status(findings):
    """``nova-status upgrade check``'s convention: 0 all fine, 1 a
    warning, 2 an error."""
    levels = {f.level for f in findings}
    return 2 if ERROR in levels else 1 if WARNING in levels else 0


def check_placement(randomize, max_candidates, strategy,
                    wide_trees=False):
    """Findings on ``placement.conf``: *randomize* is ``[placement]
    randomize_allocation_candidates``, *max_candidates*
    ``max_allocation_candidates`` (-1: no limit), *strategy*
    ``allocation_candidates_generation_strategy``, *wide_trees*
    ``[workarounds] optimize_for_wide_provider_trees``."""
    found = []
    if randomize:
        found.append(Finding(
            OK, '[placement] randomize_allocation_candidates',
            'True: simultaneous boots spread over the locality groups of '
            'a host'))
    else:
        found.append(Finding(
            WARNING, '[placement] randomize_allocation_candidates',
            'False: Nova\'s scheduler claims only the first candidate of '
            'each host, so servers booted at the same time all aim at the '
            'same device group of a host and some fail with "No valid '
            'host" while devices are free; set it to True in '
            'placement.conf'))
    if max_candidates is not None and max_candidates >= 0:
        if strategy == 'breadth-first':
            found.append(Finding(
                OK, '[placement] max_allocation_candidates',
                '%d with breadth-first generation: every host can still be '
                'offered (cyborg-nova needs no limit: one provider per '
                'locality group)' % max_candidates))
        else:
            found.append(Finding(
                WARNING, '[placement] max_allocation_candidates',
                '%d with %s generation: Placement stops after the '
                'candidates of the first hosts, and the others are never '
                'considered; remove the limit (cyborg-nova\'s one provider '
                'per locality group does not need it) or set '
                'allocation_candidates_generation_strategy = breadth-first'
                % (max_candidates, strategy or 'depth-first')))
    if wide_trees:
        found.append(Finding(
            OK, '[workarounds] optimize_for_wide_provider_trees',
            'True: harmless; cyborg-nova\'s provider trees are narrow (one '
            'child per locality group) and do not need it'))
    return worst_first(found)


def check_scheduler(enabled_filters, weight_classes, max_placement_results,
                    groups_per_host=None):
    """Findings on the scheduler's ``nova.conf``.  *groups_per_host* is
    the most locality groups one host reports, when known."""
    order = [_short(f) for f in enabled_filters]
    ours, numa = 'AcceleratorNUMAFilter', 'AcceleratorAwareNUMATopologyFilter'
    found = []
    if ours not in order:
        found.append(Finding(
            WARNING, '[filter_scheduler] enabled_filters',
            '%s is not enabled: hosts are not filtered by accelerator NUMA '
            'locality, link topology and health; add it (and '
            'cyborg_nova.filters.all_filters to available_filters)' % ours))
    elif numa in order and 'NUMATopologyFilter' in order:
        found.append(Finding(
            WARNING, '[filter_scheduler] enabled_filters',
            'NUMATopologyFilter and %s are both enabled: the second does '
            'the first\'s work (same answers, faster); remove '
            'NUMATopologyFilter' % numa))
    elif numa in order and order.index(ours) > order.index(numa):
        found.append(Finding(
            WARNING, '[filter_scheduler] enabled_filters',
            '%s comes after %s: put it before, so that the NUMA filter '
            'fits guests onto the candidates it kept' % (ours, numa)))
    elif ('NUMATopologyFilter' in order and
            order.index(ours) < order.index('NUMATopologyFilter')):
        found.append(Finding(
            WARNING, '[filter_scheduler] enabled_filters',
            '%s comes before Nova\'s NUMATopologyFilter, which then '
            'overwrites the NUMA limits it set: put it after (or replace '
            'NUMATopologyFilter with %s, before which it goes)'
            % (ours, numa)))
    elif numa not in order and 'NUMATopologyFilter' not in order:
        found.append(Finding(
            WARNING, '[filter_scheduler] enabled_filters',
            'no NUMA topology filter is enabled: guests with dedicated CPUs '
            'or hw:numa_nodes are not fitted onto host NUMA nodes; add %s '
            'after %s' % (numa, ours)))
    else:
        found.append(Finding(
            OK, '[filter_scheduler] enabled_filters',
            '%s and %s, in a working order' % (
                ours, numa if numa in order else 'NUMATopologyFilter')))
    weighers = {_short(w) for w in weight_classes}
    absent = [w for w in OUR_WEIGHERS if w not in weighers]
    if absent and ALL_WEIGHERS not in weight_classes:
        found.append(Finding(
            WARNING, '[filter_scheduler] weight_classes',
            '%s not enabled: ordinary servers may fill accelerator hosts, '
            'and accelerator servers are not spread by free devices and '
            'load; add %s' % (', '.join(absent), ALL_WEIGHERS)))
    if groups_per_host and max_placement_results < 100 * groups_per_host:
        found.append(Finding(
            WARNING, '[scheduler] max_placement_results',
            '%d: a host offers up to %d candidate(s) (one per locality '
            'group), so as few as %d hosts may be considered per request; '
            'keep the default 1000 or more'
            % (max_placement_results, groups_per_host,
               max_placement_results // groups_per_host)))
    return worst_first(found)


def check_compute(compute_driver, nova_mdev_types, our_mdev_types,
                  nova_pci_addresses=()):
    """Findings on a compute host's ``nova.conf``.  *nova_pci_addresses*
    are the addresses of accelerators we offer that Nova's own ``[pci]
    device_spec`` also matches."""
    found = []
    if compute_driver != COMPUTE_DRIVER:
        found.append(Finding(
            ERROR, '[DEFAULT] compute_driver',
            '%r: cyborg-nova\'s devices are neither reported nor attached; '
            'set compute_driver = %s' % (compute_driver, COMPUTE_DRIVER)))
    both = sorted(set(nova_mdev_types) & set(our_mdev_types))
    if nova_mdev_types and our_mdev_types:
        found.append(Finding(
            ERROR, '[devices] enabled_mdev_types',
            '%s set as well as [accelerator] enabled_mdev_types%s: Nova '
            'and cyborg-nova would both create mdevs and report VGPU '
            'inventory for the same GPUs; unset [devices] '
            'enabled_mdev_types' % (
                ', '.join(nova_mdev_types),
                ' (both name %s)' % ', '.join(both) if both else '')))
    if nova_pci_addresses:
        found.append(Finding(
            ERROR, '[pci] device_spec',
            'matches %s, which cyborg-nova also offers: a device could be '
            'handed to two guests; take them out of [pci] device_spec, or '
            'add them to [accelerator] denied_addresses'
            % ', '.join(sorted(nova_pci_addresses))))
    if not found:
        found.append(Finding(OK, '[DEFAULT] compute_driver',
                             '%s, no overlap with Nova\'s own PCI or mdev '
                             'support' % compute_driver))
    return worst_first(found)


def _short(path):
    """``'cyborg_nova.filters.accelerator_filter.X'`` -> ``'X'``."""
    return path.rsplit('.', 1)[-1]
