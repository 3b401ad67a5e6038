"""The README's parameter tables, generated from the layers' params classes (the single source).

    python scripts/param_tables.py            # print them
    python scripts/param_tables.py --update   # rewrite them in README.md, between the
                                              # <!-- table: TITLE --> and <!-- end table --> marks

tests/test_readme.py fails when README.md does not contain these tables verbatim.
"""

import dataclasses
import re
import sys
from pathlib import Path

from caffe_layers import params
from caffe_layers.config import markdown_table


def tables():
    """(title, markdown table) for the shared keys and each layer's own keys (those it adds to
    the class it extends)."""
    found = [("Keys every layer takes", markdown_table(params.PrefetchParams))]
    for name in dir(params):
        cls = getattr(params, name)
        if (isinstance(cls, type) and dataclasses.is_dataclass(cls)
                and issubclass(cls, params.PrefetchParams) and cls is not params.PrefetchParams):
            title = cls.__doc__.split(":")[0].strip()
            found.append((title, markdown_table(cls, without=cls.__bases__[0])))
    found.append(("MultiInputDataLayer attach items", markdown_table(params.AttachParams)))
    return found


README = Path(__file__).resolve().parent.parent / "README.md"


def update(text):
    """``text`` (the README) with every marked table replaced by its generated version."""
    for title, table in tables():
        pattern = re.compile(rf"(<!-- table: {re.escape(title)} -->\n).*?(<!-- end table -->)",
                             re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no '<!-- table: {title} -->' mark")
        text = pattern.sub(lambda m, table=table: m.group(1) + table + "\n" + m.group(2), text)
    return text


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--update"]:
        README.write_text(update(README.read_text()))
        return 0
    for title, table in tables():
        print(f"### {title}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
