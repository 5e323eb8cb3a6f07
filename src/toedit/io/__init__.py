"""I/O layer: input discovery, decoding, per-format readers, field selection, and atomic writers."""

from .discovery import Discovery, Fence, Skipped, discover, list_shards, split_shards
from .fields import FieldError, FieldSpec, extract_texts, free_key, record_id, replace_texts
from .formats import count_records, read_shard
from .hashing import content_hash, content_hashes
from .jsontext import jsonl_line
from .records import BadRecord, InputError, Record, Shard
from .writers import ShardWriter, write_json_atomic, write_jsonl_atomic

__all__ = [
    "BadRecord",
    "Discovery",
    "Fence",
    "FieldError",
    "FieldSpec",
    "InputError",
    "Record",
    "Shard",
    "ShardWriter",
    "Skipped",
    "content_hash",
    "content_hashes",
    "count_records",
    "discover",
    "extract_texts",
    "free_key",
    "jsonl_line",
    "list_shards",
    "read_shard",
    "record_id",
    "replace_texts",
    "split_shards",
    "write_json_atomic",
    "write_jsonl_atomic",
]
