#!/usr/bin/env python3
"""Tests of extract_snippets.py: each kind of block lands where the convention
says, other languages are left alone, and a typo in a block's kind is an
error naming the file and line."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = """# sample

```cpp
#include <cstdio>
int main() { std::puts("hi"); }
```

```cpp no-run
int main() { for (;;) {} }
```

```cpp fragment
int x = 1;
(void)x;
```

```cpp fragment
co_await aio::sleep(1ms);
```

```cpp
int twice(int x) { return 2 * x; }
```

```cpp pseudo
for (;;) { ... }
```

```python
def main(): pass
```

- in a list:

  ```cpp fragment
  int y = 2;
  ```
"""


def run(root, files):
    out = os.path.join(root, "out")
    return subprocess.run([sys.executable, os.path.join(HERE, "extract_snippets.py"), out, root, *files],
                          capture_output=True, text=True), out


def check(cond, what):
    if not cond:
        sys.exit("FAILED: " + what)


with tempfile.TemporaryDirectory() as root:
    md = os.path.join(root, "sample.md")
    open(md, "w").write(SAMPLE)
    r, out = run(root, [md])
    check(r.returncode == 0, "extraction failed: " + r.stderr)
    check("2 program" not in r.stdout and "1 program, 1 no-run, 1 declarations, 3 fragment, 1 pseudo" in r.stdout,
          "counts: " + r.stdout)
    cmake = open(os.path.join(out, "snippets.cmake")).read()
    check('celeriac_doc_program(sample_L4 "sample.md" 4 ON)' in cmake, "the program runs: " + cmake)
    check('celeriac_doc_program(sample_L9 "sample.md" 9 OFF)' in cmake, "the no-run program does not run")
    check("celeriac_doc_fragments(sample_fragments" in cmake, "fragments compiled")
    program = open(os.path.join(out, "sample_L4.cpp")).read()
    check('#line 4 "sample.md"' in program and "#include <celeriac" not in program,
          "a program is compiled as written (it includes what it uses)")
    frags = open(os.path.join(out, "sample_fragments.cpp")).read()
    check("void snippet() {" in frags and "int x = 1;" in frags, "a fragment is wrapped in a function")
    check("aio::Task<void> snippet() {" in frags and "co_return;" in frags, "a co_await fragment is a coroutine")
    check("int twice(int x)" in frags and "namespace snippet_sample_L22" in frags, "declarations at namespace scope")
    check("..." not in frags and "def main" not in frags, "pseudo and python blocks are left out")
    check("int y = 2;" in frags and "  int y" not in frags, "an indented block loses its indentation")

    bad = os.path.join(root, "bad.md")
    open(bad, "w").write("```cpp norun\nint main() {}\n```\n")
    r, _ = run(root, [bad])
    check(r.returncode != 0 and "bad.md:2: unknown word 'norun'" in r.stderr, "a typo is an error: " + r.stderr)
print("extract_snippets.py: all checks passed")
