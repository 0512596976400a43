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
# mutmut keeps its results in mutants/ (gitignored) and, given names or globs, re-checks
# every mutant they match.  So that results outlive the machine, this script first
# restores tools/mutation-results.json into mutants/ (the results of every function whose
# code has not changed since: tools/mutation_results.py) and saves mutants/ back into it
# when it ends, however it ends (commit that file).  ONLY="not checked" runs only the
# mutants without a result yet (a stopped run resumes; with every group selected mutmut
# picks them itself, after resetting the functions whose code changed; for some groups the
# list is read from mutants/, where a function added since the last run appears from the
# next run on); ONLY=survived only the survivors (after new kill tests).  STOP_AFTER=SECONDS
# interrupts mutmut after that long (as Ctrl-C does; both keep every finished mutant).
# Niced: the machine is shared.  Install with: pip install -e '.[test]' (or '.[mutation]', the same)
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
"$PYTHON" tools/mutation_results.py restore
trap '"$PYTHON" tools/mutation_results.py save' EXIT
trap 'exit 130' INT TERM
every=false
for g in odp check sync mm; do
    case " $* " in *" $g "*|*" all "*) ;; *) every=false; break ;; esac
    every=true
done
if [ "${ONLY:-}" = "not checked" ] && $every; then
    globs=""  # mutmut alone runs exactly the mutants without a result
    run=true
elif [ -n "${ONLY:-}" ]; then
    # shellcheck disable=SC2086  # one prefix per word
    globs=$("$PYTHON" tools/mutation_score.py --list "$ONLY" $prefixes)
    run=$([ -n "$globs" ] && echo true || echo false)
else
    run=true
fi
if $run; then
    limit=""
    [ -z "${STOP_AFTER:-}" ] || limit="timeout -s INT $STOP_AFTER"
    # shellcheck disable=SC2086  # the globs (or names) are mutmut's, not the shell's
    nice -n 10 $limit "$MUTMUT" run --max-children "${JOBS:-2}" $globs || [ "$?" = 124 ]
fi
# shellcheck disable=SC2086
"$PYTHON" tools/mutation_score.py $prefixes
