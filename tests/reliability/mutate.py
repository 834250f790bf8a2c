"""Mutations of a valid manifest, driven by one ``random.Random``: the fuzzer's moves.

Shared by the seeded fuzz slice (test_rel_fuzz.py, hypothesis) and the long run
(benchmarks/fuzz_manifest.py). Each mutation keeps most of the file and breaks one
thing the way a careless user or an attacker would: a hostile value for a key, a
control character, a cut, a duplicated or shuffled line, an alias, a long path.
"""

from __future__ import annotations

import random

#: Values put in place of one key's value (written after ``key: ``).
HOSTILE_VALUES = (
    "",
    "~",
    "[]",
    "{}",
    "[[]]",
    "-1",
    "0",
    "1.5",
    "true",
    "99999999999999999999999",
    "0x" + "f" * 200,
    "1e99999",
    "2024-13-45",
    "!!python/object:os.system x",
    "!!binary AAAA",
    '"\\0"',
    '"a\\nb"',
    '"tab\\there"',
    '"\\x1b[31m"',
    '"\\u202e"',
    "x" * 300,
    "/".join(["d" * 200] * 30),
    "../../etc/passwd",
    "/etc/passwd",
    "~/x",
    "C:\\\\x",
    '"' + "**/" * 300 + 'x"',
    '"**/**/**/**/**/**/x"',
    "out/x",
    "out",
    ".git",
    ".git/x",
    ".neobuild",
    "models",
    "models/a/export.py:export",
    "models/a/export.py:",
    "a.b.c:d",
    "*undefined",
    "&a [*a]",
    "[" * 80 + "]" * 80,
    "{a: {b: {c: {d: 1}}}}",
    "[ml_c5, ml_c5]",
    "{platform: {os: LINUX}}",
    "{device: ml_c5, platform: {os: LINUX, arch: ARM64}}",
    "[1, -3, 0]",
    '"s3://"',
    "'",
    '"',
    ":",
    "|",
    ">",
    "#",
    "&",
    "!",
    "%",
    "@",
    "`",
    "? x",
    "- a",
    "<<: *a",
    "{? [a]: 1}",
    "[" + ", ".join(f"{{b{i}: 1}}" for i in range(200)) + "]",
)

#: Bytes put anywhere in the file.
HOSTILE_BYTES = (
    b"\x00",
    b"\x01",
    b"\x07",
    b"\x1b",
    b"\x7f",
    b"\x85",
    b"\xff",
    b"\xfe\xff",
    b"\xef\xbb\xbf",
    b"\xc3",
    b"\t",
    b"\r",
    b"\n",
    b"\n---\n",
    b"...",
    b"\n  ",
    b"&a ",
    b"*a",
    b"%YAML 1.1\n",
    b"!!str ",
    b"\xe2\x80\xa8",
)


def mutate(text: str, rnd: random.Random, rounds: int | None = None) -> bytes:
    """``text`` with one to three mutations applied (one most often)."""
    data = text.encode()
    for _ in range(rounds or rnd.choice((1, 1, 1, 2, 3))):
        data = rnd.choice(MOVES)(data, rnd)
    return data


def _replace_value(data: bytes, rnd: random.Random) -> bytes:
    lines = data.split(b"\n")
    keyed = [i for i, line in enumerate(lines) if b":" in line.strip(b" -")]
    if not keyed:
        return data
    i = rnd.choice(keyed)
    key, _, _ = lines[i].partition(b":")
    lines[i] = key + b": " + rnd.choice(HOSTILE_VALUES).encode("utf-8", "surrogatepass")
    return b"\n".join(lines)


def _insert_bytes(data: bytes, rnd: random.Random) -> bytes:
    at = rnd.randint(0, len(data))
    return data[:at] + rnd.choice(HOSTILE_BYTES) + data[at:]


def _cut(data: bytes, rnd: random.Random) -> bytes:
    start = rnd.randint(0, len(data))
    return data[:start] + data[start + rnd.randint(1, 40) :]


def _duplicate_line(data: bytes, rnd: random.Random) -> bytes:
    lines = data.split(b"\n")
    i = rnd.randrange(len(lines))
    lines[i:i] = [lines[i]] * rnd.choice((1, 2, 50))
    return b"\n".join(lines)


def _swap_lines(data: bytes, rnd: random.Random) -> bytes:
    lines = data.split(b"\n")
    i, j = rnd.randrange(len(lines)), rnd.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _reindent(data: bytes, rnd: random.Random) -> bytes:
    lines = data.split(b"\n")
    i = rnd.randrange(len(lines))
    lines[i] = b" " * rnd.choice((0, 1, 3, 8)) + lines[i].lstrip(b" ")
    return b"\n".join(lines)


def _anchor_alias(data: bytes, rnd: random.Random) -> bytes:
    """Anchor one value and alias it from another key (or from inside itself)."""
    lines = data.split(b"\n")
    keyed = [i for i, line in enumerate(lines) if line.rstrip().endswith(b":")]
    if len(keyed) < 2:
        return data
    a, b = rnd.sample(keyed, 2)
    lines[a] = lines[a] + b" &x"
    lines[b] = lines[b] + b" *x"
    return b"\n".join(lines)


def _flip_byte(data: bytes, rnd: random.Random) -> bytes:
    if not data:
        return data
    i = rnd.randrange(len(data))
    return data[:i] + bytes([rnd.randrange(256)]) + data[i + 1 :]


MOVES = (
    _replace_value,
    _replace_value,
    _replace_value,
    _insert_bytes,
    _cut,
    _duplicate_line,
    _swap_lines,
    _reindent,
    _anchor_alias,
    _flip_byte,
)
