"""The small YAML subset ultralytics' data.yaml files use, as far as read_data_yaml reads them:
plain and quoted scalars, one-line flow lists and mappings, comments. Anything else is refused
with the file and line rather than guessed."""

from __future__ import annotations

import re

_PLAIN = re.compile(r"^[^\s\[\]{}&*!|>%@`'\",#][^#]*$")
INTEGER = re.compile(r"^-?[0-9]+$")


def strip_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (a ``#`` outside quotes, after a space)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def scalar(text: str, where: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        inner = text[1:-1]
        if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
            raise ValueError(f"{where}: cannot parse the quoted string {text}")
        return inner.replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        if "\\" in inner.replace('\\"', "").replace("\\\\", ""):
            raise ValueError(f'{where}: escapes other than \\" and \\\\ are not read: {text}')
        return inner.replace('\\"', '"').replace("\\\\", "\\")
    if not text or not _PLAIN.match(text) or ": " in text:
        raise ValueError(f"{where}: cannot parse {text!r} as a plain string (quote it)")
    return text


def flow_items(text: str, where: str) -> list[str]:
    """The comma-separated items of a one-line ``[...]`` or ``{...}`` body, quotes respected."""
    items, current, quote = [], "", None
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            items.append(current)
            current = ""
        elif char in "[]{}":
            raise ValueError(f"{where}: nested lists or mappings are not read")
        else:
            current += char
    if quote:
        raise ValueError(f"{where}: unterminated quote")
    items.append(current)
    if items[-1].strip() == "":  # a trailing comma
        items.pop()
    return items


def names_from_mapping(pairs: list[tuple[str, str]], where: str) -> list[str]:
    mapping: dict[int, str] = {}
    for key, value in pairs:
        key = key.strip()
        if not INTEGER.match(key):
            raise ValueError(f"{where}: names keys should be class indices 0, 1, ...: got {key!r}")
        if int(key) in mapping:
            raise ValueError(f"{where}: class index {key} is named twice")
        mapping[int(key)] = scalar(value, where)
    if sorted(mapping) != list(range(len(mapping))):
        raise ValueError(f"{where}: names should number the classes 0 .. {len(mapping) - 1}")
    return [mapping[k] for k in range(len(mapping))]


def split_pair(text: str, where: str) -> tuple[str, str]:
    key, colon, value = text.partition(":")
    if not colon:
        raise ValueError(f"{where}: expected 'key: value', got {text.strip()!r}")
    return key, value
