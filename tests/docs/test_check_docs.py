#!/usr/bin/env python3
"""The docs test's own test: a small source tree whose docs break each rule must fail with the
document's FILE:LINE for each, and one that keeps them must pass.

Usage: test_check_docs.py --source DIR --failoverd BIN --failoverctl BIN
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

GOOD_README = """# good

<!-- docs-test: run -->
```sh
failoverd --check-config --config /etc/failoverd/failoverd.conf
failoverctl --version
```

<!-- docs-test: skip "needs a cluster" -->
```sh
failoverctl handover minitwit
```

```ini
[node]
name = web-1
listen = 10.114.0.4:5405

[cluster]
peer = 10.114.0.5:5405
auth_key_file = /etc/failoverd/auth.key

[provider]
type = digitalocean

[instance.minitwit]
reserved_ip = 203.0.113.10
notify_master = /usr/local/bin/on-master --verbose
notify = /usr/bin/env true
```

<!-- docs-test: fragment fail "priority: 255 is out of range" -->
```ini
[instance.minitwit]
priority = 255
```

<!-- docs-test: not-config "a systemd drop-in" -->
```ini
[Service]
SupplementaryGroups=docker
```
"""

GOOD_MAN = """.TH X 5
.SH EXAMPLE
.PP
.nf
.RS
[node]
name = web\\-1

[instance.minitwit]
reserved_ip = 203.0.113.10
.RE
.fi
.PP
.\\" docs-test: run
.RS
.B failoverctl check \\-\\-help
.RE
"""

BAD_README = """# bad

<!-- docs-test: run -->
```sh
failoverctl --no-such-option
```

```sh
echo unmarked
```

<!-- docs-test: fragment fail "wrong message" -->
```ini
[instance.minitwit]
priority = 255
```

<!-- docs-test: fail "priority" -->
```ini
[instance.minitwit]
reserved_ip = 203.0.113.10
```

```ini
[instance.minitwit]
reserved_ip = 203.0.113.10
priority = 0
```
"""

BAD_MAN = """.TH X 5
.RS
.B failoverctl \\-\\-version
.RE
"""


def make_tree(parent, source, readme, man):
    root = tempfile.mkdtemp(dir=parent)
    for d in ("docs", "etc", "packaging/man", "tests/docs"):
        os.makedirs(os.path.join(root, d))
    shutil.copyfile(os.path.join(source, "etc/failoverd.conf"),
                    os.path.join(root, "etc/failoverd.conf"))
    shutil.copyfile(os.path.join(source, "tests/docs/fragment-base.conf"),
                    os.path.join(root, "tests/docs/fragment-base.conf"))
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write(readme)
    with open(os.path.join(root, "packaging/man/x.5"), "w") as f:
        f.write(man)
    return root


def run(checker, tree, args):
    return subprocess.run([sys.executable, checker, "--source", tree, "--failoverd",
                           args.failoverd, "--failoverctl", args.failoverctl],
                          capture_output=True, text=True, timeout=120)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--failoverd", required=True)
    p.add_argument("--failoverctl", required=True)
    args = p.parse_args()
    checker = os.path.join(args.source, "tests/docs/check_docs.py")
    tmp = tempfile.mkdtemp(prefix="failoverd-docs-selftest-")
    problems = []
    try:
        good = run(checker, make_tree(tmp, args.source, GOOD_README, GOOD_MAN), args)
        if good.returncode != 0:
            problems.append(f"the good tree failed:\n{good.stdout}{good.stderr}")
        elif "4 config snippets through --check-config (1 meant to fail)" not in good.stdout \
                or "1 ini blocks not failoverd's" not in good.stdout \
                or "2 shell blocks ran (3 commands), 1 skipped" not in good.stdout:
            problems.append(f"the good tree's counts are wrong:\n{good.stdout}")

        bad = run(checker, make_tree(tmp, args.source, BAD_README, BAD_MAN), args)
        expected = [
            "FAIL README.md:5: exited 2:",
            "FAIL README.md:9: shell block without a marker",
            "FAIL README.md:14: fails, but not with 'wrong message'",
            "FAIL README.md:20: marked to fail with 'priority', but --check-config exited 0",
            "FAIL README.md:25: --check-config exited 2:",
            "README.md:27: priority: 0 is out of range",
            "FAIL packaging/man/x.5:3: shell block without a marker",
            "6 failed:",
        ]
        if bad.returncode != 1:
            problems.append(f"the bad tree exited {bad.returncode}, not 1")
        for line in expected:
            if line not in bad.stderr:
                problems.append(f"the bad tree's report lacks {line!r}:\n{bad.stderr}")

        orphan = run(checker, make_tree(tmp, args.source,
                                        "# x\n\n<!-- docs-test: run -->\ntext\n", ".TH X 5\n"),
                     args)
        if orphan.returncode != 1 or "README.md:3: docs-test marker not followed by a block" \
                not in orphan.stderr:
            problems.append(f"an orphan marker was not reported:\n{orphan.stderr}")

        untagged = run(checker, make_tree(tmp, args.source,
                                          "# x\n\n```\n[instance.web]\nreserved_ip = 1.2.3.4\n```\n",
                                          ".TH X 5\n"), args)
        if untagged.returncode != 1 or "tag it ```ini" not in untagged.stderr:
            problems.append(f"an untagged config was not reported:\n{untagged.stderr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if not problems:
        print("the docs test reports each broken rule with its FILE:LINE and passes good docs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
