"""Adapters for dataframe engines: one callable class for `ray.data.Dataset.map_batches` and for
`datasets.Dataset.map(batched=True)`.

Ray Data constructs the class in each actor (the prior is loaded once, in `__init__`); `datasets` receives an
instance, which pickles without its model (`__getstate__`), so fingerprinting it is cheap and each process of
`num_proc` loads its own prior on first use. The work itself is `toedit.edit_batch`: random streams are keyed
by `id_field` or by the text's content hash, so results do not depend on batch size or partitioning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import EditConfig, ScoreConfig
from ..editing import STAT_KEYS
from ..pipeline import edit_batch
from ..prior import Prior, load_prior

STAT_COLUMNS = tuple(f"toedit_{key}" for key in STAT_KEYS)


class ToEditMapper:
    """Edit the `text_field` column of a batch; adds one `toedit_<stat>` column per statistic.

    Accepts and returns the batch types both engines use: a dict of lists (datasets), a dict of numpy arrays
    (Ray's default "numpy" format), a pandas DataFrame or a pyarrow Table.
    """

    def __init__(
        self,
        model: str = "default",
        config: EditConfig | None = None,
        text_field: str = "text",
        id_field: str | None = None,
        score_config: ScoreConfig | None = None,
        device: str | None = None,
        dtype: str | None = None,
        prior: Prior | None = None,
    ):
        # a clone in another process reloads the prior in the precision of the one it was given
        self.model, self.device = model, device
        self.dtype = dtype or (prior.dtype_name if prior is not None else None)
        self.config = config or EditConfig()
        self.config.validate()
        self.text_field, self.id_field = text_field, id_field
        self.score_config = score_config
        self._prior = prior or load_prior(model, device, dtype)

    @property
    def prior(self) -> Prior:
        if self._prior is None:  # unpickled in a new process: load this process's own copy
            self._prior = load_prior(self.model, self.device, self.dtype)
        return self._prior

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_prior": None}  # never pickle a model

    def _edit(self, texts: list[Any], ids: list[Any] | None) -> dict[str, list[Any]]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"column {self.text_field!r} must hold strings; row {i} of this batch holds "
                    f"{type(text).__name__}: filter or fill those rows first"
                )
        columns: dict[str, list[Any]] = {self.text_field: texts}
        if ids is not None:
            columns[self.id_field] = ids
        return edit_batch(columns, self.prior, self.config, self.text_field, self.id_field, self.score_config)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if isinstance(batch, pa.Table):
            ids = batch.column(self.id_field).to_pylist() if self.id_field else None
            out = self._edit(batch.column(self.text_field).to_pylist(), ids)
            table = batch.set_column(
                batch.schema.get_field_index(self.text_field), self.text_field, pa.array(out[self.text_field])
            )
            for name in STAT_COLUMNS:
                table = table.append_column(name, pa.array(out[name], pa.int64()))
            return table
        if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # pandas
            ids = batch[self.id_field].tolist() if self.id_field else None
            out = self._edit(batch[self.text_field].tolist(), ids)
            frame = batch.copy()
            for name in (self.text_field, *STAT_COLUMNS):
                frame[name] = out[name]
            return frame
        numpy = isinstance(batch.get(self.text_field), np.ndarray)
        ids = list(batch[self.id_field]) if self.id_field else None
        out = self._edit(list(batch[self.text_field]), ids)
        result = dict(batch)
        result[self.text_field] = (
            np.array(out[self.text_field], dtype=object) if numpy else out[self.text_field]
        )
        for name in STAT_COLUMNS:
            result[name] = np.asarray(out[name], dtype=np.int64) if numpy else out[name]
        return result
