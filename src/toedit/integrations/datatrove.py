"""A datatrove pipeline step that edits `Document.text` with the ToEdit rule (extra: `toedit[datatrove]`).

Each task loads the prior once, on its first batch (the step pickles without it, so executors ship configs,
never a model), and edits documents `docs_per_batch` at a time with `toedit.pipeline.edit_texts`, which packs
them into token-budget forward batches. The random stream of a document is keyed by `Document.id`, as
`toedit edit` keys a record by its `id` field, so the same documents and seed give the same text; a document
without an id is keyed by its text's content hash (as `edit_batch` does). A bad document (text that is not a
string, or holds a lone surrogate) is what `toedit edit` calls a bad record: it is logged with its id, counted
in the `bad_documents` counter and left out of the output; the rest of its batch is edited.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from ..config import ConfigError, EditConfig, ScoreConfig
from ..editing import EditResult
from ..io.fields import free_key, type_name, unencodable
from ..pipeline import content_id, edit_texts
from ..prior import Prior, load_prior

try:
    from datatrove.pipeline.base import PipelineStep
    from datatrove.utils.logging import logger
except ImportError as exc:  # the module still imports; building the step says what to install
    PipelineStep = object  # type: ignore[assignment,misc]
    _MISSING: ImportError | None = exc
else:
    _MISSING = None

INSTALL_HINT = "pip install 'toedit[datatrove]'"

# EditStats field -> the name of its counter in datatrove's stats (summed per task, mean per document)
COUNTERS = {
    "n_tokens": "tokens",
    "n_scored": "scored",
    "n_above": "selected",
    "n_changed": "changed",
    "n_dropped": "dropped",
    "n_skipped_unsafe": "skipped_unsafe",
    "n_changed_word": "changed_word",
    "n_changed_fragment": "changed_fragment",
    "n_changed_space": "changed_space",
    "n_changed_punct": "changed_punct",
}


# Processes that built a ToEditStep. A task running in another process that still sees this set filled is a
# fork of a builder (start_method="fork"), which may have run torch already (calibrate_threshold, a notebook):
# GNU OpenMP's thread pool does not survive fork, and the child's first multi-threaded op would hang.
_BUILDERS: set[int] = set()
FORK_THREADS_WARNING = (
    "ToEditStep runs in a fork of the process that built it (start_method='fork'): torch uses 1 thread here, "
    "as OpenMP cannot run threads in a fork of a process that used them; for more threads per task keep "
    "datatrove's default start_method ('forkserver') or use 'spawn'"
)


def forked_from_builder() -> bool:
    """True in a forked copy of a process that built a ToEditStep."""
    return bool(_BUILDERS) and os.getpid() not in _BUILDERS


def bad_document(doc: Any) -> str | None:
    """Why `toedit edit` would skip this document as a bad record (text not a str, or not UTF-8), else None."""
    if not isinstance(doc.text, str):
        return f"text is {type_name(doc.text)}, expected str (check the reader's text_key or adapter)"
    return unencodable({"text": doc.text})


class ToEditStep(PipelineStep):
    """Edit each document's text; per-document stats go to `metadata["toedit"]`, counters to the task stats.

    Parameters:
        model: "default" (the embedded SmolLM2-135M), a .gguf file or a Hugging Face model directory.
        config: the rule; a fixed `threshold` only (target rates would be calibrated per task and differ
            between tasks: fit one with `toedit.calibrate_threshold` on a sample first).
        docs_per_batch: documents collected before they are scored together (bounds memory).
        threads: torch threads of each task's process (with `workers=N`, about cores // N); None keeps torch's.
            In a fork of the building process (`start_method="fork"`) it is 1, whatever is asked.
    """

    name = "ToEdit"
    type = "✏️ - EDITOR"

    def __init__(
        self,
        model: str = "default",
        config: EditConfig | None = None,
        score_config: ScoreConfig | None = None,
        device: str | None = None,
        dtype: str | None = None,
        docs_per_batch: int = 64,
        threads: int | None = None,
        trust_remote_code: bool = False,
    ):
        if _MISSING is not None:
            raise ImportError(f"ToEditStep needs the datatrove package: {INSTALL_HINT}") from _MISSING
        super().__init__()
        self.config = config or EditConfig()
        self.config.validate()
        if self.config.target_change_rate is not None or self.config.target_selected_rate is not None:
            raise ConfigError(
                "ToEditStep takes a fixed threshold: a target rate would be calibrated per task and give each "
                "task its own threshold. Call toedit.calibrate_threshold on a sample first and pass "
                "EditConfig(threshold=calibration.threshold)"
            )
        self.score_config = score_config or ScoreConfig()
        self.score_config.validate()
        if docs_per_batch < 1:
            raise ConfigError(f"docs_per_batch must be >= 1, got {docs_per_batch}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.model, self.device, self.dtype = model, device, dtype
        self.docs_per_batch, self.threads, self.trust_remote_code = docs_per_batch, threads, trust_remote_code
        self._prior: Prior | None = None
        _BUILDERS.add(os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_prior": None}  # never pickle a model: each task loads its own

    def prior(self) -> Prior:
        """This task's prior, loaded on first use."""
        if self._prior is None:
            threads = self.threads
            if forked_from_builder():
                logger.warning(FORK_THREADS_WARNING)
                threads = 1
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            self._prior = load_prior(self.model, self.device, self.dtype, self.trust_remote_code)
        return self._prior

    def run(self, data: Iterable[Any] | None, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        if data is None:
            return
        batch: list[Any] = []
        for doc in data:
            batch.append(doc)
            if len(batch) >= self.docs_per_batch:
                yield from self._edit(batch)
                batch = []
        if batch:
            yield from self._edit(batch)

    def _edit(self, docs: list[Any]) -> Iterator[Any]:
        good = []
        for doc in docs:
            why = bad_document(doc)
            if why is None:
                good.append(doc)
                continue
            logger.warning(f"ToEditStep: document {doc.id!r} left out (a bad record for toedit edit): {why}")
            self.stat_update("bad_documents")
        if not good:
            return
        prior = self.prior()
        with self.track_time(unit="batch"):
            results = edit_texts(
                [d.text for d in good],
                prior,
                self.config,
                ids=[d.id or content_id(d.text) for d in good],
                score_config=self.score_config,
            )
        for doc, result in zip(good, results, strict=True):
            doc.text = result.text
            doc.metadata[free_key(doc.metadata, "toedit")] = self._record(result)
            yield doc

    def _record(self, result: EditResult) -> dict[str, Any]:
        """The per-document stats object `toedit edit` writes inline, and the task counters."""
        stats = result.stats.to_dict()
        self.stat_update("documents")
        for key, label in COUNTERS.items():
            self.stat_update(label, value=stats[key])
        if self.config.record_spans:
            stats["spans"] = result.spans or []
        return stats
