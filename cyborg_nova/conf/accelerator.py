"""Options of the ``[accelerator]`` group."""

from oslo_config import cfg

GROUP = 'accelerator'

accelerator_group = cfg.OptGroup(
    GROUP,
    title='Accelerator options',
    help='Options of cyborg-nova: which device drivers run on a compute '
         'host, which devices the operator allows to be handed to guests, '
         'and the defaults of scheduling policy.')

driver_opts = [
    cfg.ListOpt(
        'enabled_drivers',
        default=['pci', 'nvidia', 'mdev', 'numa_pinning'],
        help='Device and tuning drivers to run, by their entry-point name '
             'in the ``cyborg_nova.drivers`` namespace. A driver that fails '
             'to load or to discover is reported and skipped; the others go '
             'on. Remove ``nvidia`` on hosts without NVIDIA GPUs to save '
             'the NVML start-up; add your own driver by its name.'),
    cfg.StrOpt(
        'sysfs_root',
        default='/sys',
        help='Where sysfs is mounted. Change it only to point discovery at '
             'a captured or synthetic tree (tests, demos, support cases).'),
]

allow_opts = [
    cfg.ListOpt(
        'allowed_classes',
        default=['0300', '0302', '1200'],
        help='PCI class codes (hex, 2 to 6 digits, matched as a prefix) of '
             'devices that may be handed to guests: 0300 VGA controllers, '
             '0302 3D controllers (data-centre GPUs), 1200 processing '
             'accelerators. A device is allowed when it matches this list '
             'or ``allowed_devices``. Set it to an empty list to allow only '
             'what ``allowed_devices`` names.'),
    cfg.ListOpt(
        'allowed_devices',
        default=[],
        help='``vendor:product`` ids (hex, ``*`` for any product) of '
             'devices that may be handed to guests, in addition to '
             '``allowed_classes``; for example ``10de:2330,1172:*``.'),
    cfg.ListOpt(
        'denied_addresses',
        default=[],
        help='PCI addresses (``0000:3b:00.0``) that are never handed to '
             'guests, whatever the lists above say; for a device the host '
             'itself needs.'),
    cfg.ListOpt(
        'resource_classes',
        default=[],
        help='Resource class per device model, overriding the default taken '
             'from the PCI class (PGPU for GPUs, FPGA for processing '
             'accelerators, PCI_DEVICE otherwise): entries '
             '``VENDOR:PRODUCT=RESOURCE_CLASS`` in hex, ``*`` for any '
             'product, for example ``10de:2330=CUSTOM_ACCEL_H100,'
             '1172:*=FPGA``. Resource classes must be accelerator classes: '
             'PGPU, FPGA, PCI_DEVICE or ``CUSTOM_ACCEL_*`` (VGPU comes from '
             '``enabled_mdev_types`` only). '
             'A wrong entry stops the device drivers from loading, with a '
             'message naming it.'),
    cfg.BoolOpt(
        'require_iommu',
        default=True,
        help='Refuse to hand out a device that has no IOMMU group or whose '
             'IOMMU group holds devices that are not handed out with it. '
             'Turn off only on test hosts: without an isolated IOMMU group '
             'a guest can reach host memory or other devices.'),
    cfg.BoolOpt(
        'require_reset',
        default=True,
        help='Refuse to hand out a device the kernel cannot reset (empty '
             '``reset_method``): it could carry one tenant\'s data to the '
             'next.'),
]

nvidia_opts = [
    cfg.ListOpt(
        'nvidia_ignored_xids',
        item_type=cfg.types.Integer(),
        default=[13, 31, 43, 45, 68, 109],
        help='NVIDIA XID error codes that applications cause (illegal '
             'address, page fault, ...); they do not make a GPU unhealthy. '
             'The default is the list the NVIDIA Kubernetes device plugin '
             'uses.'),
    cfg.IntOpt(
        'nvidia_max_remapped_rows_failures',
        default=0,
        min=0,
        help='A GPU with more failed row remappings than this is reported '
             'unhealthy.'),
]

policy_opts = [
    cfg.StrOpt(
        'default_numa_policy',
        default='preferred',
        choices=[('required', 'the guest must be NUMA-local to its '
                              'devices, or the host is filtered out'),
                 ('preferred', 'align when possible, else place anywhere'),
                 ('none', 'do not align guests with their devices')],
        help='NUMA policy of servers whose flavor does not set '
             '``accelerator:numa_policy``.'),
]

mdev_opts = [
    cfg.ListOpt(
        'enabled_mdev_types',
        default=[],
        help='Mediated-device (vGPU) types the ``mdev`` driver offers, by '
             'their sysfs name (``nvidia-222``; ``ls /sys/bus/pci/devices/'
             '*/mdev_supported_types`` lists them). A device offering one '
             'of them is reported as a VGPU parent whose capacity is the '
             'instances of one type: a listed type that already has mdevs '
             'on the device, else the first listed type it offers (most '
             'GPUs host one type at a time). Empty, the default, offers no '
             'vGPUs: GPUs stay whole devices for passthrough. As with '
             'Nova\'s ``[devices] enabled_mdev_types``, which must not be '
             'set too, choosing vGPUs is an explicit decision.'),
]

scheduler_opts = [
    cfg.FloatOpt(
        'stranding_weight_multiplier',
        default=10.0,
        help='Multiplier of ``AcceleratorStrandingWeigher``: servers that ask '
             'for no accelerator prefer hosts with fewer free accelerators '
             '(hosts without any weigh most), so accelerator hosts stay free '
             'for the servers that need them. As for every Nova weigher, '
             'weights are normalised to 0..1 over the candidate hosts before '
             'this multiplier applies; the default 10.0 outweighs Nova\'s '
             'default RAM, CPU, disk, I/O, PCI and hypervisor-version '
             'weighers together (1.0 each). Lower it (1.0) to let ordinary '
             'servers spread onto accelerator hosts when those are most of '
             'the cloud; 0 turns it off. Overridable per host aggregate with '
             'the metadata key ``stranding_weight_multiplier``.'),
    cfg.FloatOpt(
        'spread_weight_multiplier',
        default=1.0,
        help='Multiplier of ``AcceleratorSpreadWeigher``: servers that ask '
             'for accelerators prefer hosts with more free devices of the '
             'requested resource classes, discounted by device load (see '
             '``load_weight``). Positive values spread such servers across '
             'hosts; a negative value packs them onto the fullest hosts, '
             'which keeps whole hosts free for large multi-device flavors. '
             'Give it an absolute value above the sum of the other '
             'weighers\' multipliers to make it decide. Overridable per '
             'host aggregate with the metadata key '
             '``spread_weight_multiplier``.'),
    cfg.FloatOpt(
        'load_weight',
        default=0.5,
        min=0.0,
        max=1.0,
        help='Share of device load in ``AcceleratorSpreadWeigher``: a free '
             'device counts ``1 - load_weight * load`` (load 0..1, the mean '
             'of its locality group as the host reports it; unknown counts '
             'as 0). 0 ignores load and counts free devices only; 1 makes a '
             'free device of a fully loaded group count for nothing. Raise '
             'it when devices share what load reveals (a PCIe switch, host '
             'memory bandwidth, vGPU time slicing).'),
    cfg.StrOpt(
        'placement_config_file',
        default='/etc/placement/placement.conf',
        help='Placement\'s configuration file, read (never written) by '
             'nova-scheduler when it starts to check the settings '
             'cyborg-nova relies on: a warning names any that hurts '
             '(``randomize_allocation_candidates = False``, a '
             '``max_allocation_candidates`` limit with depth-first '
             'generation). When the file is not on the scheduler host, run '
             '``cyborg-nova check --placement-config-file FILE`` where it '
             'is. Empty: not checked.'),
]

ALL_OPTS = (driver_opts + allow_opts + nvidia_opts + policy_opts +
            mdev_opts + scheduler_opts)


def register_opts(conf):
    # A group object of its own per config object: oslo.config keeps
    # overrides on the group, so sharing one would leak them between
    # config objects.
    group = cfg.OptGroup(GROUP, title=accelerator_group.title,
                         help=accelerator_group.help)
    conf.register_group(group)
    conf.register_opts(ALL_OPTS, group=group)


def list_opts():
    return {accelerator_group: ALL_OPTS}
