"""Evaluation stage: qrels + runs -> the figures the official tools print, ensembles, FLOPS and the results table.

- `trec_files`: strict TREC qrels/run reading, atomic run writing.
- `metrics`: ranx underneath, with the official tools' query set and document order (MS MARCO, TREC DL, BEIR).
- `fusion`: DESIGN.md's normalised-sum ensemble and ranx's fusion methods.
- `significance`: ranx's paired tests on those figures.
- `flops`: FLOPS and mean non-zeros from an index's document frequencies and encoded queries.
- `results_table`: the reference-table layout as Markdown, CSV and an effectiveness-vs-FLOPS plot.
"""
