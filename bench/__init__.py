"""The benchmarks behind `make bench`: not part of the installed package, run from the
repository root (`python -m bench.core`, which runs `bench.district` after it, and
`python -m bench.web`). They use the application's public interface only."""
