"""The code's shape, for architecture reviews: files and lines per package, the largest
files, import edges between the three packages, import cycles, and every import of a
project module made inside a function (which hides the structure from readers and tools).

    python benchmarks/code_structure.py .            # this checkout
    git worktree add /tmp/old REV && python benchmarks/code_structure.py /tmp/old

Reads the files as text (ast); imports nothing of the project.
"""
import ast, sys
from pathlib import Path
from collections import defaultdict

root = Path(sys.argv[1])
PKGS = {"edge": "edge", "edge_build": "build", "edge_calibration": "calibration"}

mods = {}  # module name -> path
for pkg, folder in PKGS.items():
    for path in sorted((root / folder).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root / folder).with_suffix("")
        parts = [pkg] + list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path

def resolve(name):
    """Longest project module prefix of name."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in mods:
            return ".".join(parts)
        parts.pop()
    return None

def imports(modname, path):
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out = []  # (target module, level: 'top'|'func', lineno)
    func_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for sub in ast.walk(node):
                if sub is not node:
                    func_nodes.add(id(sub))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = modname.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            targets = [prefix + "." + a.name for a in node.names] + [prefix]
        found = set()
        for t in targets:
            r = resolve(t)
            if r and r != modname:
                found.add(r)
        # from x import y: prefer the submodule when y is one, else x
        if isinstance(node, ast.ImportFrom) and found:
            subs = {r for r in found if r != resolve(targets[-1])}
            found = subs or found
        where = "func" if id(node) in func_nodes else "top"
        # TYPE_CHECKING blocks are not runtime imports; ignore them
        for r in found:
            out.append((r, where, node.lineno))
    return out

def pkg_of(m):
    return m.split(".")[0]

edges_all = defaultdict(set); edges_top = defaultdict(set)
func_level = []
for m, p in mods.items():
    for target, where, line in imports(m, p):
        edges_all[m].add(target)
        if where == "top":
            edges_top[m].add(target)
        else:
            func_level.append((str(p.relative_to(root)), line, target))

def sccs(graph):
    index, low, stack, on, res, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: res.append(sorted(comp))
    for v in list(mods):
        if v not in index: strong(v)
    return res

print("== files and lines per package")
for pkg, folder in PKGS.items():
    files = [p for m, p in mods.items() if pkg_of(m) == pkg]
    lines = sum(len(p.read_text().splitlines()) for p in files)
    print(f"{pkg:18} {len(files):4} files {lines:6} lines")
print("== largest files")
sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(root))) for p in mods.values()), reverse=True)
for n, p in sizes[:8]:
    print(f"  {n:5} {p}")
print("== package-level import edges (all imports / module-top only)")
for a in PKGS:
    for b in PKGS:
        if a == b: continue
        n_all = sum(1 for m in mods if pkg_of(m) == a for t in edges_all[m] if pkg_of(t) == b)
        n_top = sum(1 for m in mods if pkg_of(m) == a for t in edges_top[m] if pkg_of(t) == b)
        if n_all:
            print(f"  {a} -> {b}: {n_all} module pairs ({n_top} at module top)")
print("== module import cycles (strongly connected components), any import level")
for c in sccs(edges_all):
    print("  ", " <-> ".join(c))
print("== module import cycles, module-top imports only")
for c in sccs(edges_top):
    print("  ", " <-> ".join(c))
print(f"== function-level imports of project modules: {len(func_level)}")
by_pkg = defaultdict(int)
for f, l, t in func_level:
    by_pkg[f.split('/')[0]] += 1
print("  by folder:", dict(by_pkg))
for f, l, t in sorted(func_level):
    print(f"  {f}:{l} -> {t}")
