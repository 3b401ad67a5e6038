"""Print the README's parameter tables from the layers' params classes (the single source).

    python scripts/param_tables.py

tests/test_readme.py fails when README.md does not contain these tables verbatim.
"""

import dataclasses
import sys

from caffe_layers import params
from caffe_layers.config import markdown_table


def tables():
    """(title, markdown table) for the shared keys and each layer's own keys."""
    found = [("Keys every layer takes", markdown_table(params.PrefetchParams))]
    for name in dir(params):
        cls = getattr(params, name)
        if (isinstance(cls, type) and dataclasses.is_dataclass(cls)
                and issubclass(cls, params.PrefetchParams) and cls is not params.PrefetchParams):
            title = cls.__doc__.split(":")[0].strip()
            found.append((title, markdown_table(cls, without=params.PrefetchParams)))
    return found


def main():
    for title, table in tables():
        print(f"### {title}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
