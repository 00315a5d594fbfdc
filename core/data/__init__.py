"""Data files shipped with modelway: the dated price table (`prices.yaml`, read by
`modelway.pricing`) and the offline tokenizer vocabularies (`*.tiktoken.gz`, read by
`modelway.tokens`; provenance and licence in `NOTICE.md`). Nothing here is downloaded at run
time."""
