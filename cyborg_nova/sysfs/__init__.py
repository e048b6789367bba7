"""Reading (and, for host set-up, writing) Linux sysfs.

:mod:`.parse` turns attribute text into values and says exactly what is
wrong with a malformed one; :mod:`.host` walks a sysfs tree rooted anywhere
(``/sys`` on a host, a capture or a synthetic tree in tests).
"""
