#!/bin/bash
#
# DevStack plugin of cyborg-nova: accelerator-aware Nova, in-process.
#
# Phases:
#   stack install      install the package, non-editable, into Nova's Python
#                      (and make nova.virt.cyborg_nova importable when Nova
#                      itself is an editable checkout)
#   stack post-config  compute hosts: compute_driver and [accelerator];
#                      scheduler hosts: available_filters, enabled_filters,
#                      weight_classes and [accelerator]
#   unstack            nothing: cyborg-nova has no process of its own
#   clean              uninstall the package, remove the link made at install
#
# Settings are in devstack/settings.

# Save trace setting
_XTRACE_CYBORG_NOVA=$(set +o | grep xtrace)
set -o xtrace

# The one module the package puts inside Nova's tree (see setup.cfg [files]).
CYBORG_NOVA_SHIM=nova/virt/cyborg_nova.py
CYBORG_NOVA_LINK_RECORD=$CYBORG_NOVA_STATE_DIR/linked-driver-module

# Nova's own defaults of the scheduler options we extend (Nova 34).
CYBORG_NOVA_NOVA_AVAILABLE_FILTERS=nova.scheduler.filters.all_filters
CYBORG_NOVA_NOVA_ENABLED_FILTERS=ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter
CYBORG_NOVA_NOVA_WEIGHT_CLASSES=nova.scheduler.weights.all_weighers


# The folder of the nova package that Nova's Python imports.
function _cyborg_nova_nova_dir {
    $CYBORG_NOVA_PYTHON -c 'import os, nova
print(os.path.dirname(nova.__file__ or ""))'
}

# Where pip put the package's driver module (nova/virt/cyborg_nova.py).
function _cyborg_nova_installed_module {
    $CYBORG_NOVA_PYTHON -c 'import importlib.metadata as md
dist = md.distribution("cyborg-nova")
print(next(str(dist.locate_file(f)) for f in dist.files
           if str(f) == "nova/virt/cyborg_nova.py"))'
}

# Install the package (not editable: only a real install puts
# nova/virt/cyborg_nova.py into Nova's nova/virt/).
function install_cyborg_nova {
    local nova_dir
    nova_dir=$(_cyborg_nova_nova_dir)
    if [[ -z "$nova_dir" ]]; then
        die $LINENO "Nova's package is not importable by $CYBORG_NOVA_PYTHON: set CYBORG_NOVA_PYTHON to the Python that runs Nova; if a nova/ folder without __init__.py is in its site-packages (left by installing cyborg-nova over an editable Nova by hand), remove that folder"
    fi

    setup_install $CYBORG_NOVA_DIR

    local module
    module=$(_cyborg_nova_installed_module) || \
        die $LINENO "pip installed cyborg-nova without nova/virt/cyborg_nova.py"
    if [[ "$(dirname $module)" != "$nova_dir/virt" ]]; then
        # Nova is an editable install (DevStack's default): its package is
        # the checkout $nova_dir, found through an import hook, and the
        # module landed in a nova/ folder of site-packages that has no
        # __init__.py.  That folder would make "nova" a namespace package
        # hiding the checkout: remove it, and link the module into the
        # checkout instead.
        local site_nova
        site_nova=$(dirname $(dirname $module))
        if [[ -e $site_nova/__init__.py ]]; then
            die $LINENO "Two Nova packages: $site_nova and $nova_dir; install Nova once"
        fi
        rm -f $module
        rm -rf $site_nova/virt/__pycache__
        rmdir $site_nova/virt $site_nova 2>/dev/null || \
            die $LINENO "$site_nova holds files other than cyborg-nova's module; remove them, they hide Nova's checkout $nova_dir"
        local link=$nova_dir/virt/cyborg_nova.py
        if [[ -e $link && ! -L $link ]]; then
            die $LINENO "$link exists and is not a link made by this plugin; remove it"
        fi
        ln -sfn $CYBORG_NOVA_DIR/$CYBORG_NOVA_SHIM $link || \
            die $LINENO "Could not link $CYBORG_NOVA_SHIM into $nova_dir/virt; make it writable for $STACK_USER"
        mkdir -p $CYBORG_NOVA_STATE_DIR
        echo $link > $CYBORG_NOVA_LINK_RECORD
    fi

    # Nova must still be the same package, and the driver must resolve.
    if [[ "$(_cyborg_nova_nova_dir)" != "$nova_dir" ]]; then
        die $LINENO "After installing cyborg-nova, nova is no longer imported from $nova_dir"
    fi
    if is_service_enabled n-cpu; then
        $CYBORG_NOVA_PYTHON -c 'from nova.virt.cyborg_nova import AcceleratedLibvirtDriver' || \
            die $LINENO "nova.virt.cyborg_nova.AcceleratedLibvirtDriver does not import; see the error above"
    fi
}

# "a,b" + "c" -> "a,b,c", unless c is already in the list.
function _cyborg_nova_list_append {
    local list=$1
    local item=$2
    if [[ ",$list," == *",$item,"* ]]; then
        echo $list
    elif [[ -z "$list" ]]; then
        echo $item
    else
        echo $list,$item
    fi
}

# "a,b,c" - "b" -> "a,c".
function _cyborg_nova_list_remove {
    local list=",$1,"
    local item=$2
    list=${list//,$item,/,}
    list=${list#,}
    echo ${list%,}
}

# The nova.conf files a compute host reads: $NOVA_CONF, and $NOVA_CPU_CONF
# when it exists already (otherwise DevStack writes it from $NOVA_CONF when
# it starts nova-compute).
function _cyborg_nova_compute_confs {
    echo $NOVA_CONF
    if [[ -n "${NOVA_CPU_CONF:-}" && "$NOVA_CPU_CONF" != "$NOVA_CONF" && \
            -f "$NOVA_CPU_CONF" ]]; then
        echo $NOVA_CPU_CONF
    fi
}

function configure_cyborg_nova_compute {
    if [[ "$VIRT_DRIVER" != "libvirt" ]]; then
        die $LINENO "cyborg-nova extends Nova's libvirt driver; VIRT_DRIVER is $VIRT_DRIVER, set it to libvirt"
    fi
    local conf
    for conf in $(_cyborg_nova_compute_confs); do
        iniset $conf DEFAULT compute_driver $CYBORG_NOVA_COMPUTE_DRIVER
        iniset $conf accelerator enabled_drivers $CYBORG_NOVA_ENABLED_DRIVERS
        iniset $conf accelerator allowed_classes "$CYBORG_NOVA_ALLOWED_CLASSES"
        iniset $conf accelerator allowed_devices "$CYBORG_NOVA_ALLOWED_DEVICES"
        iniset $conf accelerator require_iommu $CYBORG_NOVA_REQUIRE_IOMMU
        iniset $conf accelerator require_reset $CYBORG_NOVA_REQUIRE_RESET
        iniset $conf accelerator default_numa_policy $CYBORG_NOVA_DEFAULT_NUMA_POLICY
    done
}

function configure_cyborg_nova_scheduler {
    local conf=$NOVA_CONF

    # available_filters is multi-valued: keep Nova's (its default when
    # unset), add ours once.
    local available
    available=" $(iniget_multiline $conf filter_scheduler available_filters) "
    if [[ "$available" == "  " ]]; then
        iniset $conf filter_scheduler available_filters $CYBORG_NOVA_NOVA_AVAILABLE_FILTERS
        available=" $CYBORG_NOVA_NOVA_AVAILABLE_FILTERS "
    fi
    local path
    for path in ${CYBORG_NOVA_AVAILABLE_FILTERS//,/ }; do
        if [[ "$available" != *" $path "* ]]; then
            iniadd $conf filter_scheduler available_filters $path
            available="$available$path "
        fi
    done

    # enabled_filters names classes: ours go last;
    # AcceleratorAwareNUMATopologyFilter replaces Nova's NUMATopologyFilter
    # (same decisions, and it keeps the devices' NUMA markers).
    local enabled
    enabled=$(iniget $conf filter_scheduler enabled_filters)
    enabled=${enabled// /}
    enabled=${enabled:-$CYBORG_NOVA_NOVA_ENABLED_FILTERS}
    enabled=$(_cyborg_nova_list_remove $enabled NUMATopologyFilter)
    local name
    for name in ${CYBORG_NOVA_FILTERS//,/ }; do
        enabled=$(_cyborg_nova_list_remove $enabled $name)
        enabled=$(_cyborg_nova_list_append $enabled $name)
    done
    iniset $conf filter_scheduler enabled_filters $enabled

    local weighers
    weighers=$(iniget $conf filter_scheduler weight_classes)
    weighers=${weighers// /}
    weighers=${weighers:-$CYBORG_NOVA_NOVA_WEIGHT_CLASSES}
    for path in ${CYBORG_NOVA_WEIGHT_CLASSES//,/ }; do
        weighers=$(_cyborg_nova_list_append $weighers $path)
    done
    iniset $conf filter_scheduler weight_classes $weighers

    iniset $conf accelerator default_numa_policy $CYBORG_NOVA_DEFAULT_NUMA_POLICY
    if [[ -n "$CYBORG_NOVA_STRANDING_WEIGHT_MULTIPLIER" ]]; then
        iniset $conf accelerator stranding_weight_multiplier $CYBORG_NOVA_STRANDING_WEIGHT_MULTIPLIER
    fi
    if [[ -n "$CYBORG_NOVA_SPREAD_WEIGHT_MULTIPLIER" ]]; then
        iniset $conf accelerator spread_weight_multiplier $CYBORG_NOVA_SPREAD_WEIGHT_MULTIPLIER
    fi
    if [[ -n "$CYBORG_NOVA_LOAD_WEIGHT" ]]; then
        iniset $conf accelerator load_weight $CYBORG_NOVA_LOAD_WEIGHT
    fi
}

function configure_cyborg_nova {
    if is_service_enabled n-cpu && [[ "$CYBORG_NOVA_CONFIGURE_COMPUTE" == "True" ]]; then
        configure_cyborg_nova_compute
    fi
    if is_service_enabled n-sch && [[ "$CYBORG_NOVA_CONFIGURE_SCHEDULER" == "True" ]]; then
        configure_cyborg_nova_scheduler
    fi
}

# Remove the link install_cyborg_nova made, and nothing else.
function cleanup_cyborg_nova {
    pip_uninstall cyborg-nova
    if [[ -f $CYBORG_NOVA_LINK_RECORD ]]; then
        local link
        link=$(cat $CYBORG_NOVA_LINK_RECORD)
        if [[ -L $link && "$(readlink $link)" == "$CYBORG_NOVA_DIR/$CYBORG_NOVA_SHIM" ]]; then
            rm -f $link
        fi
        rm -f $CYBORG_NOVA_LINK_RECORD
    fi
}


if [[ "$1" == "stack" && "$2" == "install" ]]; then
    echo_summary "Installing cyborg-nova"
    install_cyborg_nova
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    echo_summary "Configuring Nova for cyborg-nova"
    configure_cyborg_nova
fi

if [[ "$1" == "unstack" ]]; then
    # Nothing to stop: cyborg-nova runs inside Nova's services.
    :
fi

if [[ "$1" == "clean" ]]; then
    cleanup_cyborg_nova
fi

# Restore xtrace
$_XTRACE_CYBORG_NOVA
