#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Makes the upstream patch series from the repository, its one source.

Each patches/NNNN-*.patch is one patch of the series:

    Subject: <subject line>
    Overlay: <glob of the repository's files the patch adds>   (any number)

    <commit message>
    ---
    <diff of the upstream files it changes>                    (optional)

A patch may also change overlay files that an earlier patch added: its
patches/NNNN-*.amend holds that diff (a step of the series, such as a
feature added to a file in its own patch).  The repository's overlay file
is the final state; the earlier patch adds it with every later amend
reversed, and each amend applies in its patch.

build/prepare.sh applies the diffs and lays every overlay file over the
kernel tree; this script makes the same changes patch by patch as commits
on a pristine tree (a git repository made once from the Debian tarball)
and writes them with `git format-patch`, a cover letter first.  Every
file of the overlay must belong to exactly one patch, so the tree the
tests build and the series cannot drift apart.

Usage: series.py BASE_REPO WORKTREE OUTDIR
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERLAY_DIRS = ["rust", "drivers", "include", "Documentation", "tools"]
BASE_TAG = "v7.3-base"
# What build/prepare.sh applies, too.
PATCH_RE = r"\d{4}-.*\.patch$"


def git(repo, *args, **kw):
    return subprocess.run(["git", "-C", repo, *args], check=True, text=True,
                          capture_output=True, **kw).stdout


def die(msg):
    sys.exit(f"error: {msg}")


def parse(path):
    """Subject, overlay globs, message body and diff of one patch file."""
    text = open(path).read()
    head, _, rest = text.partition("\n\n")
    subject, globs = None, []
    for line in head.splitlines():
        key, _, value = line.partition(": ")
        if key == "Subject":
            subject = value
        elif key == "Overlay":
            globs.append(value)
        else:
            die(f"{path}: unknown header line {line!r}")
    if not subject:
        die(f"{path}: no Subject")
    body, sep, diff = rest.partition("\n---\n")
    return subject, globs, body.strip() + "\n", diff if sep else ""


def overlay_files():
    out = git(TOP, "ls-files", "-co", "--exclude-standard", "--", *OVERLAY_DIRS)
    return sorted(out.split())


def claims(patches, files):
    """The overlay files of each patch; fails unless each file has one patch."""
    owner, result = {}, []
    for path, (_, globs, _, _) in patches:
        mine = []
        for g in globs:
            # As in a shell: "*" does not cross "/".
            hits = [f for f in files
                    if fnmatch.fnmatchcase(f, g) and f.count("/") == g.count("/")]
            if not hits:
                die(f"{os.path.basename(path)}: Overlay {g} matches no file")
            mine += hits
        for f in mine:
            if f in owner:
                die(f"{f} is in {owner[f]} and {os.path.basename(path)}")
            owner[f] = os.path.basename(path)
        result.append(sorted(set(mine)))
    lost = [f for f in files if f not in owner]
    if lost:
        die("overlay files in no patch: " + " ".join(lost))
    return result


def amended_files(name, diff):
    """The files an amend changes; its headers must be "--- a/F" and "+++ b/F"."""
    olds = re.findall(r"(?m)^--- (\S+)", diff)
    news = re.findall(r"(?m)^\+\+\+ (\S+)", diff)
    if len(olds) != len(news) or any(
            o != "a/" + n[2:] or not n.startswith("b/") for o, n in zip(olds, news)):
        die(f"{name}: each file's headers must be --- a/FILE and +++ b/FILE")
    return sorted(set(n[2:] for n in news))


def stages(patches, files, tmp):
    """Lays the overlay files as the patches that add them do (every later
    amend reversed) in tmp; returns each patch's amend diff or ""."""
    amends, owner = [], {}
    for (path, _), mine in zip(patches, files):
        amend = path[:-len(".patch")] + ".amend"
        diff = open(amend).read() if os.path.exists(amend) else ""
        for f in amended_files(os.path.basename(amend), diff):
            if f not in owner:
                die(f"{os.path.basename(amend)} changes {f}, which no earlier patch adds")
        for f in mine:
            owner[f] = path
        amends.append(diff)
    for f in owner:
        dst = os.path.join(tmp, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(TOP, f), dst)
        shutil.copymode(os.path.join(TOP, f), dst)
    for (path, _), diff in reversed(list(zip(patches, amends))):
        # --force, not --batch: an amend that looks applied already must fail, not go forward.
        if diff and subprocess.run(
                ["patch", "-d", tmp, "-p1", "-R", "--force", "--silent", "--fuzz=0",
                 "--no-backup-if-mismatch", "--reject-file=-"], input=diff, text=True,
                stdout=subprocess.DEVNULL).returncode != 0:
            die(f"{os.path.basename(path)[:-len('.patch')]}.amend does not reverse"
                " from the overlay files: make it again from the changed files")
    return amends


def cover_letter(path):
    """Fills format-patch's cover letter from patches/cover-letter and the
    benchmark results page."""
    text = open(path).read()
    src = open(os.path.join(TOP, "patches", "cover-letter")).read()
    subject, _, blurb = src.partition("\n\n")
    results = os.path.join(TOP, "bench", "RESULTS.md")
    if os.path.exists(results):
        res = open(results).read()
        m = re.search(r"(?ms)^Generated by .*?\n\n(\|.*?)\n\n", res)
        date = re.search(r"on (\d{4}-\d\d-\d\d)", res)
        if m and "@BENCH@" in blurb:
            blurb = blurb.replace(
                "@BENCH@", f"measured with make bench on {date.group(1) if date else '?'}"
                " (one boot, TCG, 2 vCPUs):\n\n" + m.group(1))
    if "@BENCH@" in blurb:
        die("no benchmark table for the cover letter: run make bench (bench/RESULTS.md)")
    text = text.replace("*** SUBJECT HERE ***", subject.strip())
    text = text.replace("*** BLURB HERE ***", blurb.strip())
    open(path, "w").write(text)


def commit_all(base, work, patches, files, amends, staged, name, email):
    """Makes the series as commits in the worktree work of base."""
    if os.path.isdir(work) and subprocess.run(
            ["git", "-C", work, "rev-parse", "-q", "--verify", "HEAD"],
            capture_output=True).returncode != 0:
        # A worktree whose creation was interrupted: make it again.
        shutil.rmtree(work)
    if not os.path.isdir(work):
        git(base, "worktree", "prune")
        git(base, "worktree", "add", "-q", "--detach", work, BASE_TAG)
    git(work, "checkout", "-q", "--detach", "-f", BASE_TAG)
    git(work, "clean", "-q", "-fdx")
    env = dict(os.environ, GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email,
               GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email)
    for (path, (subject, _, body, diff)), mine, amend in zip(patches, files, amends):
        for d in (diff, amend):
            if d and subprocess.run(["git", "-C", work, "apply", "--whitespace=nowarn", "-"],
                                    input=d, text=True).returncode != 0:
                die(f"{os.path.basename(path)}: its diff or amend does not apply")
        for f in mine:
            dst = os.path.join(work, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(staged, f), dst)
            shutil.copymode(os.path.join(staged, f), dst)
        git(work, "add", "-A", "-f")
        git(work, "commit", "-q", "-s", "-F", "-", input=f"{subject}\n\n{body}", env=env)



def main():
    base, work, outdir = sys.argv[1:4]
    name = subprocess.run(["git", "-C", TOP, "config", "user.name"], text=True,
                          capture_output=True).stdout.strip()
    email = subprocess.run(["git", "-C", TOP, "config", "user.email"], text=True,
                           capture_output=True).stdout.strip()
    if (not name or not email) and os.environ.get("SVM_SERIES_CHECK"):
        # Only checked (make test), never sent: any identity will do.
        name, email = "svm-atomic check", "check@localhost"
    if not name or not email:
        die("set git config user.name and user.email: the sign-off is yours")
    names = os.listdir(os.path.join(TOP, "patches"))
    odd = [p for p in names if p.endswith(".patch") and not re.match(PATCH_RE, p)]
    if odd:
        die("patches/ holds patches outside the series (NNNN-*.patch): " + " ".join(odd))
    lost = [p for p in names if p.endswith(".amend") and p[:-len(".amend")] + ".patch" not in names]
    if lost:
        die("amends without their patch (NNNN-*.patch of the same name): " + " ".join(lost))
    paths = sorted(os.path.join(TOP, "patches", p) for p in names if re.match(PATCH_RE, p))
    patches = [(p, parse(p)) for p in paths]
    files = claims(patches, overlay_files())
    with tempfile.TemporaryDirectory(prefix="series-") as staged:
        amends = stages(patches, files, staged)
        commit_all(base, work, patches, files, amends, staged, name, email)

    for f in sum(files, []):
        with open(os.path.join(TOP, f), "rb") as a, open(os.path.join(work, f), "rb") as b:
            if a.read() != b.read():
                die(f"{f}: the series does not end in the repository's file")

    shutil.rmtree(outdir, ignore_errors=True)
    # RFC while targets of the benchmark are not met and no mainline tree was tried.
    git(work, "format-patch", "-q", "--rfc", "--cover-letter", "--thread", "-o", outdir,
        f"{BASE_TAG}..HEAD")
    cover = os.path.join(outdir, "0000-cover-letter.patch")
    cover_letter(cover)
    for p in sorted(os.listdir(outdir)):
        text = open(os.path.join(outdir, p)).read()
        diff = text[text.find("\ndiff --git "):] if "\ndiff --git " in text else ""
        n = sum(1 for l in diff.splitlines()
                if l.startswith(("+", "-")) and not l.startswith(("+++", "---")))
        print(f"{p}" + (f"  (+/- {n} lines)" if n else ""))


if __name__ == "__main__":
    main()
