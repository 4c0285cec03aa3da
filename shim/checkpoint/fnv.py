"""FNV-1a 32-bit, the hash behind every kubelet checkpoint checksum (Go's ``hash/fnv.New32a``)."""

from __future__ import annotations

_OFFSET_BASIS = 0x811C9DC5
_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a_32(data: bytes) -> int:
    """The FNV-1a 32-bit hash of ``data`` as an unsigned int."""
    value = _OFFSET_BASIS
    for byte in data:
        value = ((value ^ byte) * _PRIME) & _MASK
    return value


def fnv1a_32_text(text: str) -> int:
    """FNV-1a 32 over the UTF-8 bytes of ``text`` (what ``fmt.Fprintf(hash, "%v", text)`` feeds the hash)."""
    return fnv1a_32(text.encode("utf-8", "surrogatepass"))
