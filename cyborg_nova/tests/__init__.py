from nova import monkey_patch; monkey_patch.patch()  # noqa

# The line above must stay the first statement of the package stestr
# imports: Nova's fixtures need eventlet's monkey patching applied before
# anything else is imported (Nova's own nova/tests/__init__.py does the
# same).  Whether it patches follows OS_NOVA_DISABLE_EVENTLET_PATCHING.
