"""regplan's benchmarks against skopeo sync (issue #7); run with `just bench`. Not part of the
installed package and never collected by the test suite."""
