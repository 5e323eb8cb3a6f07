"""Corpus analysis: n-gram concentration and DSIR selection (PPL, embeddings and the report build on these)."""
