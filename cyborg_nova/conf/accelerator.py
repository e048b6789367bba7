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
    cfg.DictOpt(
        'resource_classes',
        default={},
        help='Resource class per ``vendor:product`` (``*`` for any '
             'product), overriding the default taken from the PCI class '
             '(PGPU for GPUs, FPGA for processing accelerators, PCI_DEVICE '
             'otherwise); for example ``1172:*:FPGA`` is written '
             '``1172\\:*:FPGA``. Values must be standard resource classes '
             'or CUSTOM_ ones.'),
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

ALL_OPTS = driver_opts + allow_opts + nvidia_opts + policy_opts


def register_opts(conf):
    conf.register_group(accelerator_group)
    conf.register_opts(ALL_OPTS, group=accelerator_group)


def list_opts():
    return {accelerator_group: ALL_OPTS}
