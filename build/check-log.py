#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judges a test guest's console log.

Splits the log into the KUnit part (KTAP printed while the kernel boots) and
the userspace part (kselftest TAP printed by the init script), counts the
results of both, and fails on any failed or missing test and on any kernel
report in the whole log: WARN, BUG, Oops, lockdep, KMEMLEAK, RCU stall, hung
task, panic, a poisoned free page written to.  Ends with one line: "N passed, N failed[, N skipped]".

Every test the project has must have run: tests/manifest lists the KUnit
cases of the project's suites and every selftest by name, and a test that is
missing from the log, or that ran but is not listed, fails the run.

Usage: check-log.py LOG KUNIT_PY
       check-log.py --splats LOG    (kernel reports only)
       check-log.py --manifest LOG  (print the manifest of what LOG ran)
"""

import os
import re
import subprocess
import sys

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "manifest")
# KUnit suites of this project; other suites in the kernel only have to pass.
OUR_SUITES = re.compile(r"^rust_(mm_|drm_svm)")
# The project's doctests, in the kernel crate's doctest suite.
OUR_DOCTESTS = re.compile(r"^rust_doctest_kernel_(drm_svm|mm_mmu_notifier|mm_device_exclusive|kunit_user_mem)")

SPLATS = [
    r"WARNING: ",
    r"\bBUG: ",
    r"kernel BUG at",
    r"\bOops\b",
    r"general protection fault",
    r"Kernel panic",
    r"DEBUG_LOCKS_WARN_ON",
    r"possible (circular|recursive) locking",
    r"inconsistent lock state",
    r"suspicious RCU usage",
    r"INFO: trying to register non-static key",
    r"unreferenced object 0x",
    r"kmemleak: .*suspected memory leak",
    r"rcu: INFO: .*stall",
    r"self-detected stall",
    r"INFO: task .* blocked for more than",
    r"UBSAN: ",
    r"pagealloc: memory corruption",
    r"Poison overwritten",
    r"SVM-TIMEOUT",
]
SPLAT_RE = re.compile("|".join(SPLATS))
# Strip the printk timestamp and the console prefix of KTAP lines.
TS_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?")
KMSG_RE = re.compile(r"\[\s*\d+\.\d+\]")


def untangle(lines):
    """The console carries kernel messages (printed by the kernel's console thread, at any
    moment) and the selftests' output on one serial line: a kernel message can land in the
    middle of a test's line, splitting it.  Returns the kernel messages as lines of their own
    and the userspace text joined back into its lines."""
    out = []
    pending = ""
    for raw in lines:
        m = KMSG_RE.search(raw)
        if m is None:
            out.append(pending + raw)
            pending = ""
        elif m.start() == 0:
            out.append(raw)
        else:
            pending += raw[: m.start()]
            out.append(raw[m.start():])
    if pending:
        out.append(pending)
    return out


def splats(lines):
    """Kernel reports anywhere in the log."""
    return ["kernel report: " + l.strip() for l in lines if SPLAT_RE.search(l)]


def ran_tests(lines):
    """Names of the tests the log shows a result for, as in tests/manifest."""
    names = []
    suite = None
    binary = None
    for raw in lines:
        line = TS_RE.sub("", raw)
        m = re.match(r"^\s+# Subtest: (\S+)$", line)
        if m:
            suite = m.group(1)
            continue
        m = re.match(r"^\s{4,}(?:not ok|ok) \d+ (\S+)", line)
        if m and suite and (OUR_SUITES.match(suite) or
                            suite == "rust_doctests_kernel" and OUR_DOCTESTS.match(m.group(1))):
            names.append(f"kunit {suite}.{m.group(1)}")
            continue
        if line.startswith("SVM-TEST-BEGIN "):
            binary = line.split()[1]
        elif line.startswith("SVM-TEST-END "):
            binary = None
        elif binary:
            m = re.match(r"^(?:not ok|ok) \d+ (\S+)", line)
            if m:
                names.append(f"selftest {binary} {m.group(1)}")
    return names


def check_manifest(lines):
    """Problems: expected tests that did not run, and tests that ran but are not expected."""
    with open(MANIFEST) as f:
        expected = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    ran = ran_tests(lines)
    problems = [f"missing test (in tests/manifest, not in the log): {t}"
                for t in expected if t not in ran]
    problems += [f"unlisted test (ran, not in tests/manifest): {t}"
                 for t in dict.fromkeys(ran) if t not in expected]
    return problems


def main():
    if sys.argv[1] == "--manifest":
        with open(sys.argv[2], errors="replace") as f:
            for name in dict.fromkeys(ran_tests(untangle(f.read().splitlines()))):
                print(name)
        return 0
    if sys.argv[1] == "--splats":
        with open(sys.argv[2], errors="replace") as f:
            found = splats(f.read().splitlines())
        for p in found:
            print(p)
        return 1 if found else 0
    log_path, kunit_py = sys.argv[1], sys.argv[2]
    with open(log_path, errors="replace") as f:
        lines = untangle([l.rstrip("\r\n") for l in f])

    passed = failed = skipped = 0
    problems = []

    problems += splats(lines)
    problems += check_manifest(lines)

    # KUnit: everything before the userspace marker.
    try:
        split = next(i for i, l in enumerate(lines) if "SVM-USERSPACE-BEGIN" in l)
    except StopIteration:
        split = len(lines)
        problems.append("the guest never reached userspace (crash or hang during boot)")
    kunit_log = "\n".join(lines[:split]) + "\n"
    kunit_out = subprocess.run(
        [sys.executable, kunit_py, "parse"],
        input=kunit_log,
        capture_output=True,
        text=True,
    )
    print(kunit_out.stdout, end="")
    m = re.search(
        r"Ran (\d+) tests: passed: (\d+)(?:, failed: (\d+))?(?:, skipped: (\d+))?"
        r"(?:, errors: (\d+))?(?:, crashed: (\d+))?",
        re.sub(r"\x1b\[[0-9;]*m", "", kunit_out.stdout),
    )
    if not m:
        problems.append("no KUnit results found")
    else:
        k_pass = int(m.group(2))
        k_fail = sum(int(g or 0) for g in (m.group(3), m.group(5), m.group(6)))
        k_skip = int(m.group(4) or 0)
        if int(m.group(1)) == 0:
            problems.append("no KUnit test ran")
        passed += k_pass
        failed += k_fail
        skipped += k_skip
        if k_fail or kunit_out.returncode:
            problems.append("KUnit failures")

    def count(ok, name, problem):
        """Counts one userspace result and prints it."""
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"[PASSED] {name}")
        else:
            failed += 1
            print(f"[FAILED] {name}")
            problems.append(problem)

    # Userspace: kselftest TAP between SVM-TEST-BEGIN/END markers.
    print("============= userspace selftests (kselftest TAP) =============")
    current = None
    plan = results = 0
    ran_any = False
    for line in lines[split:]:
        line = TS_RE.sub("", line)
        if line.startswith("SVM-TEST-BEGIN "):
            current = line.split()[1]
            plan = results = 0
            ran_any = True
            continue
        if current is None:
            continue
        if line.startswith("SVM-TEST-END "):
            rc = int(line.rsplit("rc=", 1)[1])
            if rc != 0 and not any("not ok" in p for p in problems if current in p):
                problems.append(f"{current}: exited with status {rc}")
                if results == 0:
                    failed += 1
            if plan == 0:
                problems.append(f"{current}: printed no test plan")
                failed += 1
            elif results < plan:
                problems.append(f"{current}: planned {plan} tests, {results} reported")
                failed += plan - results
            current = None
            continue
        m = re.match(r"^1\.\.(\d+)$", line)
        if m:
            plan = int(m.group(1))
            continue
        m = re.match(r"^(not ok|ok) \d+ (.*)$", line)
        if m:
            results += 1
            name = f"{current}: {m.group(2)}"
            if "# SKIP" in m.group(2):
                skipped += 1
                print(f"[SKIPPED] {name}")
            else:
                count(m.group(1) == "ok", name, f"not ok: {name}")
        elif line.startswith("#") and ("FAIL" in line or "ASSERT" in line or "Expected" in line):
            print("    " + line)
    # Loading and unloading the driver module count as tests.
    for step, name in (("SVM-INSMOD", "insmod vsvm.ko"), ("SVM-RMMOD", "rmmod vsvm")):
        rc = next((l.split("rc=", 1)[1].strip() for l in lines if l.startswith(step + " rc=")), None)
        count(rc == "0", f"module: {name}", f"{name} failed (rc={rc})")
    if not ran_any:
        problems.append("no userspace selftest ran")
    if current is not None:
        problems.append(f"{current}: did not finish")
        failed += 1
    if not any("SVM-USERSPACE-END" in l for l in lines):
        problems.append("the guest did not finish its userspace run")
    if not any("SVM-KMEMLEAK-END" in l for l in lines):
        problems.append("no kmemleak scan (the guest must run one)")

    if problems:
        print("============= problems =============")
        for p in dict.fromkeys(problems):
            print("  " + p)
        print(f"full log: {log_path}")
        if failed == 0:
            failed = 1
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
