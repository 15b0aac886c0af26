"""labrram benchmarks: ``python -m benchmarks`` (or ``make bench``) runs every ``bench_*`` module;
``python -m benchmarks read`` runs one. Each prints a table of medians and ratios."""
