"""Benchmarks: dtd side by side with the peers Debian packages.

`python -m bench` (`make bench`) runs every figure for every implementation
in one run and prints one markdown table; the raw figures go to
bench/results/ as JSON.

A bench module measures one area and exposes ``run(quick: bool) ->
list[dict]``; bench/__main__.py picks up the modules listed in its EXTRAS
when they exist. Each dict is one row of the table:

    {"figure": "multilog, lines per second, no stamps",   # the row's label
     "unit": "lines/s",                                   # "" for a count
     "results": {"daemontools": 512000.0, "dtd": 301000.0, "runit": None},
     "target": ">= 250000 lines/s",                       # shown as is
     "limit": 250000.0,                                   # optional
     "better": "higher"}                                  # optional, "lower" by default

`results` maps an implementation's name (impls.ORDER gives the column
order) to the median figure, or None where it does not apply or failed;
`limit`, when present, is what dtd must reach (at most, or at least when
better is "higher"). Any further keys (runs, samples, errors) go into the
JSON untouched. Modules that measure dtd run it from bench.venv.bindir(),
a regular install built once per run, not from the editable dev venv.
"""
