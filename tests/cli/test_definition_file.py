"""A graph type definition file is read whole and strictly: a key the command does not
know (a typo such as `node_types`) is refused, naming the key and the expected ones,
and nothing is defined."""

from __future__ import annotations

from pathlib import Path

from graphstore.cli import ExitCode
from tests.cli.test_cli import gs


def test_a_definition_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for step in (
        ("init",),
        ("account", "create", "ada@example.com", "--name", "Ada"),
        ("tenant", "create", "acme", "--name", "Acme", "--owner", "ada@example.com"),
    ):
        assert gs(data, *step).returncode == 0
    cases = {
        "name: s\nnode_types:\n  - name: person\n": (
            "the definition: unknown key 'node_types' (did you mean 'nodeTypes'?); "
            "expected name, description, config, nodeTypes, edgeTypes"
        ),
        "name: s\nnodeTypes:\n  - name: person\n    schemas: {}\n": (
            "`nodeTypes[0]`: unknown key 'schemas' (did you mean 'schema'?); "
            "expected name, description, schema"
        ),
        "name: s\nedgeTypes:\n  - name: knows\n    allowedSources: [p]\n": (
            "`edgeTypes[0]`: unknown key 'allowedSources'"
        ),
        "name: s\nnodeTypes:\n  - description: nameless\n": "`nodeTypes[0]`: needs a `name`",
        "name: s\nnodeTypes: person\n": "`nodeTypes`: expected a list, got str",
        "name: s\nconfig: {graph_type: undirected}\n": "graph_type",
    }
    for text, expected in cases.items():
        file = tmp_path / "type.yaml"
        file.write_text(text)
        done = gs(data, "graph-type", "define", str(file), "--tenant", "acme")
        assert done.returncode == ExitCode.REFUSED, (text, done.stderr)
        assert expected in done.stderr, (text, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    listed = gs(data, "--json", "graph-type", "list", "--tenant", "acme")
    assert listed.stdout.strip() == "[]"  # nothing defined
