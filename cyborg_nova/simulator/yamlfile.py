"""Reading a YAML file so that every error names its file, line and field.

The file is composed (not constructed) with ``yaml.SafeLoader``: each node
keeps its start mark, and :class:`Node` walks the tree handing out plain
values while remembering where each came from.
"""

import yaml


class SpecError(ValueError):
    """A malformed fleet or trace file: the message names file, line and
    field, what is wrong and what to write instead."""


class Node:
    """A YAML node with its path (``hosts[2].numa_nodes[0].gpus``)."""

    def __init__(self, node, path, filename):
        self.node = node
        self.path = path
        self.filename = filename

    @property
    def line(self):
        return self.node.start_mark.line + 1

    def error(self, what):
        return SpecError('%s:%d: %s: %s' % (
            self.filename, self.line, self.path or '(top level)', what))

    def mapping(self, allowed=None):
        """``{key: Node}``; unknown keys (not in *allowed*) are errors."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error('expected a mapping (key: value lines), got %s'
                             % _kind(self.node))
        out = {}
        for knode, vnode in self.node.value:
            key = knode.value
            if not isinstance(knode, yaml.ScalarNode):
                raise Node(knode, self.path, self.filename).error(
                    'keys must be plain names')
            path = '%s.%s' % (self.path, key) if self.path else key
            if key in out:
                raise Node(knode, path, self.filename).error(
                    'given twice')
            if allowed is not None and key not in allowed:
                raise Node(knode, path, self.filename).error(
                    'unknown field; known fields here: %s'
                    % ', '.join(sorted(allowed)))
            out[key] = Node(vnode, path, self.filename)
        return out

    def sequence(self):
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error('expected a list (lines starting with "- "), '
                             'got %s' % _kind(self.node))
        return [Node(n, '%s[%d]' % (self.path, i), self.filename)
                for i, n in enumerate(self.node.value)]

    def scalar(self):
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error('expected a single value, got %s'
                             % _kind(self.node))
        return yaml.SafeLoader.construct_scalar(_LOADER, self.node)

    def _typed(self):
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.error('expected a single value, got %s'
                             % _kind(self.node))
        return _LOADER.construct_object(self.node, deep=True)

    def integer(self, minimum=0, maximum=None):
        value = self._typed()
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error('%r is not a whole number' % (value,))
        if value < minimum or (maximum is not None and value > maximum):
            raise self.error('%d is out of range: use %d%s' % (
                value, minimum,
                ' to %d' % maximum if maximum is not None else ' or more'))
        return value

    def number(self, minimum=0.0):
        value = self._typed()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error('%r is not a number' % (value,))
        if value < minimum:
            raise self.error('%s is out of range: use %s or more'
                             % (value, minimum))
        return float(value)

    def boolean(self):
        value = self._typed()
        if not isinstance(value, bool):
            raise self.error('%r is not true or false' % (value,))
        return value

    def string(self):
        value = self._typed()
        if not isinstance(value, str) or not value:
            raise self.error('%r is not a name' % (value,))
        return value


_LOADER = yaml.SafeLoader('')


def _kind(node):
    if isinstance(node, yaml.MappingNode):
        return 'a mapping'
    if isinstance(node, yaml.SequenceNode):
        return 'a list'
    return 'the value %r' % node.value


def load(path):
    """The root :class:`Node` of the YAML file at *path*."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as exc:
        raise SpecError('%s: cannot read: %s' % (path, exc.strerror))
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError('%s:%s: not valid YAML: %s' % (
            path, mark.line + 1 if mark else '?', exc.problem or exc))
    if root is None:
        raise SpecError('%s:1: the file is empty' % path)
    return Node(root, '', path)


def required(fields, key, parent):
    if key not in fields:
        raise parent.error('missing field %r' % key)
    return fields[key]
