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
#
# mutmut keeps its results in mutants/ and, given names or globs, re-checks every mutant
# they match.  ONLY="not checked" runs only the group's mutants without a result yet (a
# stopped run resumes; after a code change, mutmut has reset the mutants of the changed
# functions), ONLY=survived only its survivors (after new kill tests).
# Niced: the machine is shared.  Install with: pip install -e '.[mutation]'
set -eu
cd "$(dirname "$0")/.."
MUTMUT="${MUTMUT:-.venv/bin/mutmut}"
PYTHON="${PYTHON:-.venv/bin/python}"
[ "$#" -gt 0 ] || set -- all
globs=""
prefixes=""
for group in "$@"; do
    case "$group" in
        odp) globs="$globs odp_async.odp*"; prefixes="$prefixes odp_async.odp" ;;
        check) globs="$globs odp_async.check*"; prefixes="$prefixes odp_async.check" ;;
        sync) globs="$globs odp_async.sync*"; prefixes="$prefixes odp_async.sync" ;;
        mm) globs="$globs odp_async.mm*"; prefixes="$prefixes odp_async.mm" ;;
        all) globs="$globs odp_async.odp* odp_async.check* odp_async.sync* odp_async.mm*"
             prefixes="$prefixes odp_async.odp odp_async.check odp_async.sync odp_async.mm" ;;
        *) echo "tools/mutation.sh: unknown module group '$group' (odp, check, sync, mm, all)" >&2
           exit 2 ;;
    esac
done
if [ -n "${ONLY:-}" ]; then
    # shellcheck disable=SC2086  # one prefix per word
    globs=$("$PYTHON" tools/mutation_score.py --list "$ONLY" $prefixes)
fi
if [ -n "$globs" ]; then
    # shellcheck disable=SC2086  # the globs (or names) are mutmut's, not the shell's
    nice -n 10 "$MUTMUT" run --max-children "${JOBS:-2}" $globs
fi
# shellcheck disable=SC2086
"$PYTHON" tools/mutation_score.py $prefixes
