"""Where each key of a YAML file is: line numbers of its nodes by path, for error messages."""

from __future__ import annotations

import yaml

__all__ = ["LineIndex"]


class LineIndex:
    """Line numbers of YAML nodes by path, for error messages."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the key at `path`, else of its nearest ancestor in the file."""
        node = self._root
        found = node.start_mark.line + 1 if node is not None else None
        for part in path:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        child = value
                        found = key.start_mark.line + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and part < len(node.value)
            ):
                child = node.value[part]
                found = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return found

    def describe(self, path: tuple[str | int, ...]) -> str:
        """``routes[1].when (line 12)``: the path as the file is read, with its line."""
        text = ""
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        text = text or "(top level)"
        line = self.line(path)
        return f"{text} (line {line})" if line is not None else text
