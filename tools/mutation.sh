#!/bin/sh
# Mutation testing of the model's core with mutmut 3 (config: [tool.mutmut] in
# pyproject.toml).  Usage: tools/mutation.sh [odp|check|sync|mm|all] ...
#
# mutmut first runs the selected tests once and records which tests call each function;
# each mutant then runs only those tests (-x: stop at the first failure), fastest first
# (tests/conftest.py).  The selection (tests/odp, tests/model, tests/scenarios, the sync,
# condition and deadlock tests) leaves out tests/odp/test_liveness.py and the
# random-schedule and live sweeps of the scenarios, for time: see [tool.mutmut].
# Survivors and why each is equivalent: tools/mutation-equivalents.md.
# Niced: the machine is shared.  Install with: pip install -e '.[mutation]'
set -eu
cd "$(dirname "$0")/.."
MUTMUT="${MUTMUT:-.venv/bin/mutmut}"
PYTHON="${PYTHON:-.venv/bin/python}"
[ "$#" -gt 0 ] || set -- all
globs=""
for group in "$@"; do
    case "$group" in
        odp) globs="$globs odp_async.odp*" ;;
        check) globs="$globs odp_async.check*" ;;
        sync) globs="$globs odp_async.sync*" ;;
        mm) globs="$globs odp_async.mm*" ;;
        all) globs="$globs odp_async.odp* odp_async.check* odp_async.sync* odp_async.mm*" ;;
        *) echo "tools/mutation.sh: unknown module group '$group' (odp, check, sync, mm, all)" >&2
           exit 2 ;;
    esac
done
# shellcheck disable=SC2086  # the globs are mutmut's, not the shell's
nice -n 10 "$MUTMUT" run --max-children "${JOBS:-2}" $globs
"$PYTHON" tools/mutation_score.py
