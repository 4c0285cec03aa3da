"""What the CPU and memory checkpoints share: the kubelet's checkpoint envelope.

Both files are a legacy struct (hashed as its go-spew dump with the checksum zeroed) that newer
kubelets wrap with a ``data`` string and its own ``dataChecksum``. The struct types and the
legacy fallbacks differ per manager; the envelope and its checksums are the same.
"""

from __future__ import annotations

from typing import Any

from shim.checkpoint import CORRUPTED, CheckpointError
from shim.checkpoint.fnv import fnv1a_32_text
from shim.checkpoint.godump import dump_for_hash, dump_string
from shim.checkpoint.gojson import GoMap, GoString, GoStruct, unmarshal


def fresh(typ: GoStruct) -> dict[str, Any]:
    """A checkpoint struct as ``newXCheckpoint()`` makes it before decoding: its maps exist
    (empty, not nil), strings are empty, numbers zero."""
    return {
        f.go_name: {} if isinstance(f.type, GoMap) else ("" if isinstance(f.type, GoString) else 0)
        for f in typ.fields
    }


def data_checksum(data: str) -> int:
    """``dataChecksum``: FNV-1a 32 of the go-spew dump of the ``data`` string."""
    return fnv1a_32_text(dump_string(data))


def struct_checksum(value: dict[str, Any], typ: GoStruct, name: str) -> int:
    """A legacy ``checksum``: FNV-1a 32 of ``dump.ForHash`` of the struct, checksum zeroed, as
    printed under the struct name ``name``."""
    return fnv1a_32_text(dump_for_hash(dict(value, Checksum=0), GoStruct(name, typ.fields)))


def load_enveloped(
    text: str, top_type: GoStruct, data_type: GoStruct, manager: str
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """``(top-level value, data, error)``: the data object when the envelope verifies, else
    the reason (``manager`` is "cpu manager" or "memory manager", as in the kubelet's texts)."""
    top, error = unmarshal(text, top_type, fresh(top_type))
    if error is not None:
        return top, None, f"failed to deserialize {manager} checkpoint: {error}"
    data, error = unmarshal(top["Data"], data_type, fresh(data_type))
    if error is not None:
        return top, None, f"failed to deserialize {manager} checkpoint data: {error}"
    if top["DataChecksum"] != data_checksum(top["Data"]):
        return top, None, CORRUPTED
    return top, data, None


def require_envelope_or_legacy(top: dict[str, Any], error: str | None, version: str) -> None:
    """A file that has an envelope must verify; only a file without one (no ``data``, no
    ``dataChecksum``) may fall back to the legacy formats."""
    if top["Data"] or top["DataChecksum"]:
        raise CheckpointError(f"could not load {version} checkpoint: {error}")
