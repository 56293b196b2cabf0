#!/usr/bin/env python3
"""Runs every config snippet and shell command the docs show (docs/contributing-docs.md).

Config snippets (```ini blocks in README.md and docs/*.md, .nf/.fi or .EX/.EE blocks in the man
pages, the files in etc/) go through the real `failoverd --check-config`; shell blocks (```sh in
markdown, .RS blocks of .B lines in the man pages) run with bash unless a marker says why not.
Files a snippet names under the deployment directories are created in a throw-away root with
the modes the daemon wants, and the snippet's paths are rewritten to point there.

Usage: check_docs.py --source DIR --failoverd BIN --failoverctl BIN
"""

import argparse
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

CONFIG_LANGS = {"ini", "conf", "cfg"}
SHELL_LANGS = {"sh", "bash", "shell", "console"}
MARKER_RE = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
ROFF_MARKER_RE = re.compile(r'^\.\\"\s*docs-test:\s*(.*?)\s*$')
FENCE_RE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
# A line an untagged block would not have unless it were a failoverd config.
CONFIG_HEADER_RE = re.compile(r"^\s*\[(node|cluster|provider|check\.[^\]]+|instance\.[^\]]+)\]\s*$")

# Paths under these prefixes belong to a deployment: the test creates them in its own root.
# Anything else (/usr/bin/logger, /etc/ssl/certs/..., /var/run/docker.sock) is the host's.
DEPLOYMENT_PREFIXES = ("/etc/failoverd", "/etc/credstore", "/usr/local", "/run/failoverd",
                       "/var/lib/failoverd", "/srv", "/opt")
SECRET_KEYS = {"auth_key_file", "token_file"}
FILE_KEYS = {"ca_file"}
DIR_KEYS = {"state_dir"}
PARENT_DIR_KEYS = {"control_socket"}
COMMAND_KEYS = {"notify_master", "notify_backup", "notify_fault", "notify_stop", "notify",
                "command"}
COMMAND_TIMEOUT_S = 20


@dataclass
class Marker:
    kind: str = ""  # "", "fragment", "fail", "not-config", "run", "skip"
    fragment: bool = False
    message: str = ""
    line: int = 0


@dataclass
class Block:
    path: str
    line: int  # first line of the block's content, 1-based
    kind: str  # "config" or "shell"
    text: str
    marker: Marker = field(default_factory=Marker)


class DocError(Exception):
    pass


def parse_marker(words_text, where):
    """`fragment`, `fail "message"`, `fragment fail "message"`, `not-config "why"`, `run`,
    `skip "why"`."""
    try:
        words = shlex.split(words_text)
    except ValueError as e:
        raise DocError(f"{where}: unreadable docs-test marker: {e}")
    m = Marker()
    i = 0
    while i < len(words):
        w = words[i]
        if w == "fragment":
            m.fragment = True
            i += 1
            continue
        if w in ("fail", "not-config", "skip"):
            if i + 1 >= len(words) or not words[i + 1].strip():
                raise DocError(f'{where}: docs-test: {w} needs a quoted text, e.g. {w} "why"')
            m.kind, m.message = w, words[i + 1]
            i += 2
            continue
        if w == "run":
            m.kind = w
            i += 1
            continue
        raise DocError(f"{where}: unknown docs-test word {w!r} "
                       "(allowed: fragment, fail, not-config, run, skip)")
    if m.fragment and m.kind not in ("", "fail"):
        raise DocError(f"{where}: fragment goes with a config snippet, not with {m.kind}")
    return m


def marker_on(regex, line, lineno, rel, pending):
    """The docs-test marker on this line (None if there is none); a marker while another one
    still waits for its block is an error."""
    mm = regex.match(line)
    if not mm:
        return None
    if pending is not None:
        raise DocError(f"{rel}:{pending.line}: docs-test marker not followed by a block")
    marker = parse_marker(mm.group(1), f"{rel}:{lineno}")
    marker.line = lineno
    return marker


def markdown_blocks(path, rel):
    blocks = []
    lines = open(path, encoding="utf-8").read().split("\n")
    pending = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = marker_on(MARKER_RE, line, i + 1, rel, pending)
        if marker is not None:
            pending = marker
            i += 1
            continue
        fm = FENCE_RE.match(line)
        if not fm:
            if pending is not None and line.strip():
                raise DocError(f"{rel}:{pending.line}: docs-test marker not followed by a block")
            i += 1
            continue
        indent, fence, lang = fm.group(1), fm.group(2), fm.group(3).lower()
        body = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            text = lines[j]
            body.append(text[len(indent):] if text.startswith(indent) else text.lstrip())
            j += 1
        if j >= len(lines):
            raise DocError(f"{rel}:{i + 1}: fenced block never closed")
        marker = pending or Marker()
        pending = None
        where = f"{rel}:{i + 2}"
        if lang in CONFIG_LANGS:
            kind = "config"
        elif lang in SHELL_LANGS:
            kind = "shell"
        else:
            if marker.kind or marker.fragment:
                raise DocError(f"{where}: docs-test marker on a ```{lang or ' '} block, which "
                               "is neither config (ini) nor shell (sh)")
            if any(CONFIG_HEADER_RE.match(b) for b in body):
                raise DocError(f"{where}: this block looks like a failoverd config: "
                               "tag it ```ini so it is checked")
            i = j + 1
            continue
        blocks.append(Block(rel, i + 2, kind, "\n".join(body) + "\n", marker))
        i = j + 1
    if pending is not None:
        raise DocError(f"{rel}:{pending.line}: docs-test marker not followed by a block")
    return blocks


def roff_text(line):
    """The text of a roff line with font requests and the common escapes removed."""
    if line.startswith((".B ", ".I ", ".BR ", ".IR ", ".RB ", ".RI ", ".BI ", ".IB ")):
        args = line.split(" ", 1)[1]
        line = " ".join(shlex.split(args.replace("\\", "\\\\"))) if '"' in args else args
    line = re.sub(r"\\f[BIRP]", "", line)
    line = line.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    return line.replace("\\\\", "\\")


def roff_blocks(path, rel):
    blocks = []
    lines = open(path, encoding="utf-8").read().split("\n")
    pending = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = marker_on(ROFF_MARKER_RE, line, i + 1, rel, pending)
        if marker is not None:
            pending = marker
            i += 1
            continue
        if line in (".nf", ".EX"):
            end = ".fi" if line == ".nf" else ".EE"
            body = []
            j = i + 1
            while j < len(lines) and lines[j] != end:
                if not re.match(r"^\.(RS|RE|PP|sp|br)\b", lines[j]):
                    body.append(roff_text(lines[j]))
                j += 1
            if j >= len(lines):
                raise DocError(f"{rel}:{i + 1}: {line} without {end}")
            blocks.append(Block(rel, i + 2, "config", "\n".join(body) + "\n",
                                pending or Marker()))
            pending = None
            i = j + 1
            continue
        if line == ".RS":
            j = i + 1
            body = []
            only_commands = True
            while j < len(lines) and lines[j] != ".RE":
                if lines[j].startswith(".B "):
                    body.append(roff_text(lines[j]))
                elif lines[j] != ".br":
                    only_commands = False
                j += 1
            if only_commands and body:
                blocks.append(Block(rel, i + 2, "shell", "\n".join(body) + "\n",
                                    pending or Marker()))
                pending = None
            elif pending is not None:
                raise DocError(f"{rel}:{pending.line}: docs-test marker before an .RS block "
                               "that is not a list of .B command lines")
            i = j + 1
            continue
        if pending is not None and line not in ("", ".PP"):
            raise DocError(f"{rel}:{pending.line}: docs-test marker not followed by a block")
        i += 1
    return blocks


def parse_ini(text):
    """Sections as an ordered list of (header, [(key, line)]); lines outside a section kept."""
    sections = []
    current = None
    for raw in text.split("\n"):
        s = raw.strip()
        if not s or s[0] in "#;":
            if current is not None:
                current[1].append((None, raw))
            continue
        if s.startswith("[") and s.endswith("]"):
            current = (s, [])
            sections.append(current)
            continue
        key = s.split("=", 1)[0].strip() if "=" in s else None
        if current is None:
            current = ("", [])
            sections.insert(0, current)
        current[1].append((key, raw))
    return sections


def merge_fragment(base_text, fragment_text):
    """The base config with the fragment's lines pasted in: a key the fragment sets replaces
    the base's lines of that key in the same section; new sections are appended."""
    base = parse_ini(base_text)
    frag = parse_ini(fragment_text)
    by_header = {h: lines for h, lines in base}
    for header, lines in frag:
        if header in by_header:
            replaced = {k for k, _ in lines if k}
            kept = [(k, r) for k, r in by_header[header] if k not in replaced]
            by_header[header][:] = kept + lines
        else:
            base.append((header, lines))
            by_header[header] = lines
    out = []
    for header, lines in base:
        if header:
            out.append(header)
        out.extend(r for _, r in lines)
        out.append("")
    return "\n".join(out)


class Root:
    """A throw-away root that stands for a node's file system."""

    def __init__(self, parent):
        self.path = tempfile.mkdtemp(prefix="root-", dir=parent)
        self.credentials = self.mk_dir("/run/credentials/failoverd.service")
        os.chmod(self.credentials, 0o700)
        self.write_secret(os.path.join(self.credentials, "do-token"),
                          ("dop_v1_" + secrets.token_hex(32)).encode())

    def outside(self, path):
        return os.path.isabs(path) and path.startswith(DEPLOYMENT_PREFIXES)

    def map(self, path):
        return self.path + path

    def mk_dir(self, path):
        full = self.map(path) if not path.startswith(self.path) else path
        os.makedirs(full, exist_ok=True)
        return full

    @staticmethod
    def write_secret(full, content):
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content)
        os.chmod(full, 0o600)

    @staticmethod
    def write_program(full):
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if not os.path.exists(full):
            with open(full, "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
        os.chmod(full, 0o755)

    def rewrite_text(self, text):
        pattern = "|".join(re.escape(p) for p in DEPLOYMENT_PREFIXES)
        return re.sub(r"(?<![\w./-])(" + pattern + r")(?=[/\s'\":]|$)", self.path + r"\1",
                      text, flags=re.M)


def prepare_config(text, root, config_dir):
    """Rewrites deployment paths into the root and creates the files the config names."""
    out = []
    for raw in text.split("\n"):
        s = raw.strip()
        if not s or s[0] in "#;" or "=" not in s or s.startswith("["):
            out.append(raw)
            continue
        key, value = (p.strip() for p in s.split("=", 1))
        # Only what a trailing comment would leave as the value names a file.
        bare = re.split(r"\s[#;]", value, maxsplit=1)[0].strip()
        if key in COMMAND_KEYS:
            try:
                words = shlex.split(bare)
            except ValueError:
                words = []
            target = words[0] if words else ""
        elif key in SECRET_KEYS | FILE_KEYS | DIR_KEYS | PARENT_DIR_KEYS:
            target = bare
        else:
            out.append(raw)
            continue
        if not target:
            out.append(raw)
            continue
        if os.path.isabs(target):
            if not root.outside(target):
                out.append(raw)
                continue
            full = root.map(target)
            raw = raw.replace(target, full, 1)
        elif key in COMMAND_KEYS and "/" not in target:
            out.append(raw)  # looked up in PATH
            continue
        else:
            full = os.path.join(config_dir, target)
        if key == "auth_key_file":
            root.write_secret(full, secrets.token_bytes(32))
        elif key == "token_file":
            root.write_secret(full, ("dop_v1_" + secrets.token_hex(32)).encode())
        elif key in FILE_KEYS:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            shutil.copyfile("/etc/ssl/certs/ca-certificates.crt"
                            if os.path.exists("/etc/ssl/certs/ca-certificates.crt")
                            else os.devnull, full)
        elif key in DIR_KEYS:
            os.makedirs(full, exist_ok=True)
        elif key in PARENT_DIR_KEYS:
            os.makedirs(os.path.dirname(full), exist_ok=True)
        elif key in COMMAND_KEYS:
            root.write_program(full)
        out.append(raw)
    return "\n".join(out)


class Runner:
    def __init__(self, args):
        self.source = os.path.abspath(args.source)
        self.failoverd = os.path.abspath(args.failoverd)
        self.failoverctl = os.path.abspath(args.failoverctl)
        self.tmp = tempfile.mkdtemp(prefix="failoverd-docs-test-")
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.bin)
        os.symlink(self.failoverd, os.path.join(self.bin, "failoverd"))
        os.symlink(self.failoverctl, os.path.join(self.bin, "failoverctl"))
        with open(os.path.join(self.source, "tests/docs/fragment-base.conf")) as f:
            self.fragment_base = f.read()
        self.failures = []
        self.counts = {"config": 0, "config-fail": 0, "not-config": 0, "run": 0, "commands": 0,
                       "skip": 0}
        self.skipped = []
        self.checked = []

    def env(self, root):
        env = dict(os.environ)
        env["PATH"] = self.bin + ":" + env.get("PATH", "/usr/bin:/bin")
        env["CREDENTIALS_DIRECTORY"] = root.credentials
        env.pop("FAILOVERD_CONFIG", None)
        return env

    def fail(self, block, what):
        self.failures.append(f"{block.path}:{block.line}: {what}")

    def check_config(self, block, name=None):
        m = block.marker
        if m.kind == "not-config":
            self.counts["not-config"] += 1
            return
        if m.kind in ("run", "skip"):
            raise DocError(f"{block.path}:{m.line}: docs-test {m.kind} is for shell blocks")
        root = Root(self.tmp)
        config_dir = root.mk_dir("/etc/failoverd")
        text = block.text
        if m.fragment:
            text = merge_fragment(self.fragment_base, text)
        config = os.path.join(config_dir, name or "failoverd.conf")
        with open(config, "w") as f:
            f.write(prepare_config(text, root, config_dir))
        r = subprocess.run([self.failoverd, "--check-config", "--config", config],
                           capture_output=True, text=True, env=self.env(root),
                           timeout=COMMAND_TIMEOUT_S, cwd=config_dir)
        output = (r.stdout + r.stderr).replace(root.path, "").strip()
        if m.kind == "fail":
            self.counts["config-fail"] += 1
            if r.returncode != 2:
                self.fail(block, f"marked to fail with {m.message!r}, but --check-config exited "
                                 f"{r.returncode}: {output}")
            elif m.message not in output:
                self.fail(block, f"fails, but not with {m.message!r}:\n    "
                                 + output.replace("\n", "\n    "))
            return
        self.counts["config"] += 1
        if not m.fragment:
            # The checker's FILE:LINE, as the line of the document it came from.
            output = re.sub(r"^\S*?" + re.escape(os.path.basename(config)) + r":(\d+):",
                            lambda g: f"{block.path}:{block.line + int(g.group(1)) - 1}:",
                            output, flags=re.M)
        if r.returncode != 0:
            self.fail(block, "--check-config exited {}:\n    {}".format(
                r.returncode, output.replace("\n", "\n    ")))

    def run_shell(self, block):
        m = block.marker
        if m.kind == "skip":
            self.counts["skip"] += 1
            self.skipped.append(f"{block.path}:{block.line}: {m.message}")
            return
        if m.kind != "run":
            self.fail(block, 'shell block without a marker: mark it <!-- docs-test: run --> '
                             '(or .\\" docs-test: run) if it runs offline, else '
                             'skip "why it cannot"')
            return
        self.counts["run"] += 1
        self.counts["commands"] += sum(
            1 for line in block.text.split("\n")
            if line.strip() and not line.strip().startswith("#")
            and not line.rstrip().endswith("\\"))
        root = Root(self.tmp)
        etc = root.mk_dir("/etc/failoverd")
        shutil.copyfile(os.path.join(self.source, "etc/failoverd.conf"),
                        os.path.join(etc, "failoverd.conf"))
        script = "set -e -o pipefail\n" + root.rewrite_text(block.text)
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                           env=self.env(root), timeout=COMMAND_TIMEOUT_S, cwd=root.path)
        if r.returncode != 0:
            output = (r.stdout + r.stderr).replace(root.path, "").strip()
            self.fail(block, "exited {}:\n    {}".format(r.returncode,
                                                          output.replace("\n", "\n    ")))

    def documents(self):
        docs = ["README.md"]
        docs += sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(self.source, "docs"))
                       if f.endswith(".md"))
        man = sorted(os.path.join("packaging/man", f)
                     for f in os.listdir(os.path.join(self.source, "packaging/man")))
        etc = sorted(os.path.join("etc", f) for f in os.listdir(os.path.join(self.source, "etc")))
        return docs, man, etc

    def run(self):
        docs, man, etc = self.documents()
        blocks = []
        for rel in docs:
            blocks += markdown_blocks(os.path.join(self.source, rel), rel)
        for rel in man:
            blocks += roff_blocks(os.path.join(self.source, rel), rel)
        for rel in etc:
            with open(os.path.join(self.source, rel)) as f:
                blocks.append(Block(rel, 1, "config", f.read()))
        for block in blocks:
            label = block.marker.kind or ("fragment" if block.marker.fragment else "")
            if block.marker.kind != "skip":
                self.checked.append(f"{block.path}:{block.line}: {block.kind} {label}".rstrip())
            if block.kind == "config":
                self.check_config(block, os.path.basename(block.path) if block.path in etc
                                  else None)
            else:
                self.run_shell(block)
        return blocks


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", required=True)
    p.add_argument("--failoverd", required=True)
    p.add_argument("--failoverctl", required=True)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--list", action="store_true", help="name every block checked or run")
    args = p.parse_args()
    runner = Runner(args)
    try:
        runner.run()
    except DocError as e:
        print(f"docs test: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(runner.tmp, ignore_errors=True)
    c = runner.counts
    print(f"{c['config'] + c['config-fail']} config snippets through --check-config "
          f"({c['config-fail']} meant to fail), {c['not-config']} ini blocks not failoverd's; "
          f"{c['run']} shell blocks ran ({c['commands']} commands), {c['skip']} skipped:")
    if args.list:
        for b in runner.checked:
            print(f"  {b}")
    for s in runner.skipped:
        print(f"  skipped {s}")
    if runner.failures:
        print(f"{len(runner.failures)} failed:", file=sys.stderr)
        for f in runner.failures:
            print(f"FAIL {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
