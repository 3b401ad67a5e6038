"""The ``param_str`` loader (caffe_layers.config) on its own, with a small config class."""

from __future__ import annotations

import dataclasses

import pytest

from caffe_layers import config
from caffe_layers.config import BOOL, FLOAT, FLOATS, INT, STR, STRS, choice, option, problem
from caffe_layers.errors import CaffeLayersError, ConfigError


@dataclasses.dataclass(frozen=True)
class Toy:
    """Every kind of key, two cross-key checks."""

    size: int = option(INT, minimum=1, maximum=100, example="8", doc="items per batch",
                       caffe="toy_param.size")
    ratio: float = option(FLOAT, 0.5, minimum=0, maximum=1, doc="a fraction")
    flag: bool = option(BOOL, False)
    name: str = option(STR, "")
    mean: tuple = option(FLOATS, ())
    tags: tuple = option(STRS, ())
    mode: str = option(choice("fast", "exact"), "fast")
    limit: int = option(INT, None, minimum=0, doc="optional, no value by default")
    low: int = option(INT, 0)
    high: int = option(INT, 10)

    def problems(self) -> list:
        found = []
        if self.low > self.high:
            found.append(problem("low, high", f"low must be <= high (got {self.low} > "
                                              f"{self.high})"))
        if self.flag and not self.name:
            found.append(problem("flag, name", "flag needs a name"))
        return found


def load(param_str: str) -> Toy:
    return config.load(Toy, param_str)


def problems_of(param_str: str) -> list:
    """The problem lines of the ConfigError that ``param_str`` raises."""
    with pytest.raises(ConfigError) as info:
        load(param_str)
    return [line[4:] for line in str(info.value).splitlines() if line.startswith("  - ")]


# --- parsing --------------------------------------------------------------------------------


def test_a_valid_param_str_gives_the_frozen_dataclass():
    toy = load("{size: 8, ratio: 0.25, flag: true, name: cat, mean: [1, 2.5], tags: a, "
               "mode: exact, limit: 3, low: 2, high: 4}")
    assert toy == Toy(size=8, ratio=0.25, flag=True, name="cat", mean=(1.0, 2.5), tags=("a",),
                      mode="exact", limit=3, low=2, high=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        toy.size = 9


def test_block_yaml_works_too():
    assert load("size: 8\nname: dog\n") == Toy(size=8, name="dog")


def test_defaults_apply_to_missing_keys():
    toy = load("{size: 1}")
    assert (toy.ratio, toy.flag, toy.name, toy.mean, toy.tags, toy.mode, toy.limit) == \
        (0.5, False, "", (), (), "fast", None)


@pytest.mark.parametrize(("param_str", "where"), [
    ("{size: 1, name: [}", "at line 1, column 18"),
    ("size: 1\nmean: [1,\n", "at line 3, column 1"),
    ("size: 1\n  name: x", "at line 2, column 7"),
])
def test_yaml_errors_give_line_and_column(param_str, where):
    with pytest.raises(ConfigError) as info:
        load(param_str)
    message = str(info.value)
    assert message.startswith(f"param_str is not valid YAML {where}: ")
    assert '{source: train.txt, batch_size: 64}' in message


@pytest.mark.parametrize("param_str", ["[1, 2]", "hello", "42", "- size: 1"])
def test_a_param_str_that_is_not_a_mapping(param_str):
    with pytest.raises(ConfigError, match="param_str must be a YAML mapping of key: value, got "):
        load(param_str)


def test_config_error_is_a_value_error_and_a_caffe_layers_error():
    with pytest.raises(ValueError) as info:  # noqa: PT011 (the builtin is the point)
        load("{size: 0}")
    assert isinstance(info.value, CaffeLayersError)


def test_where_names_the_block():
    with pytest.raises(ConfigError, match=r"^MyLayer param_str has 1 problem:\n  - size: "):
        config.load(Toy, "{}", where="MyLayer param_str")


def test_build_takes_an_already_parsed_mapping():
    assert config.build(Toy, {"size": 3}) == Toy(size=3)
    assert config.parse_yaml("") == {}
    assert config.parse_yaml("  \n") == {}


# --- keys -----------------------------------------------------------------------------------


def test_unknown_key_with_a_close_match():
    assert problems_of("{size: 1, raito: 0.3}") == ["raito: unknown key; did you mean 'ratio'?"]


def test_unknown_key_without_a_close_match_lists_the_known_keys():
    assert problems_of("{size: 1, zzz: 3}") == [
        "zzz: unknown key; known keys: size, ratio, flag, name, mean, tags, mode, limit, low, "
        "high"]


def test_required_key_missing_says_its_kind_and_an_example():
    assert problems_of("{}") == ["size: required, an integer (e.g. size: 8)"]
    assert problems_of("") == ["size: required, an integer (e.g. size: 8)"]


# --- kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", "1.5", "'8'", "[8]", "{a: 1}", ".inf",
                                   ".nan", "null"])
def test_int_refuses_bools_fractions_strings_and_non_finite(value):
    [problem] = problems_of(f"{{size: {value}}}")
    assert problem.startswith("size: must be an integer (got ")
    assert problem.endswith("(e.g. size: 8)")


@pytest.mark.parametrize(("value", "expected"), [("1", 1.0), ("0", 0.0), ("0.75", 0.75),
                                                 ("1.0e-1", 0.1), ("1e-1", 0.1), ("5E-1", 0.5),
                                                 ("0.5e0", 0.5), ("'1e-1'", 0.1)])
def test_float_accepts_ints_and_floats(value, expected):
    # PyYAML (YAML 1.1) loads `1e-1` and `0.5e0` as strings; they are read as numbers anyway.
    toy = load(f"{{size: 1, ratio: {value}}}")
    assert toy.ratio == expected
    assert type(toy.ratio) is float


@pytest.mark.parametrize(("value", "shown"), [("true", "True"), ("abc", "'abc'"),
                                              ("[0.5]", "[0.5]"), ("null", "None"),
                                              ("1e", "'1e'"), ("e5", "'e5'")])
def test_float_refuses_non_numbers(value, shown):
    assert problems_of(f"{{size: 1, ratio: {value}}}") == [f"ratio: must be a number (got "
                                                           f"{shown})"]


def test_float_refuses_an_integer_beyond_float_range():
    huge = "1" + "0" * 400
    [problem] = problems_of(f"{{size: 1, ratio: {huge}}}")
    assert problem.startswith("ratio: must be a number within float range (got 1000")


@pytest.mark.parametrize(("fraction", "value"), [("1/255", 1 / 255), ("1 / 4", 0.25),
                                                 ("2.5/10", 0.25)])
def test_a_fraction_gets_a_hint_with_its_value(fraction, value):
    assert problems_of(f"{{size: 1, ratio: {fraction}}}") == [
        f"ratio: must be a number; write {value!r} (got {fraction!r})"]


def test_a_division_by_zero_gets_no_value_hint():
    assert problems_of("{size: 1, ratio: 1/0}") == ["ratio: must be a number (got '1/0')"]


@pytest.mark.parametrize("value", ["1", "0", "'true'", "yes_please"])
def test_bool_is_true_or_false_only(value):
    [problem] = problems_of(f"{{size: 1, flag: {value}}}")
    assert problem.startswith("flag: must be true or false (got ")


def test_yaml_1_1_booleans_are_bools():
    assert load("{size: 1, flag: yes, name: n}").flag is True
    assert load("{size: 1, flag: off}").flag is False


def test_str_takes_numbers_as_their_text_but_not_bools_or_lists():
    assert load("{size: 1, name: 12}").name == "12"
    assert problems_of("{size: 1, name: true}") == ["name: must be a string (got True)"]
    assert problems_of("{size: 1, name: [a]}") == ["name: must be a string (got ['a'])"]


@pytest.mark.parametrize(("value", "expected"), [("3", (3.0,)), ("[104, 117.5, 123]",
                                                                 (104.0, 117.5, 123.0)),
                                                 ("[]", ())])
def test_number_or_list_gives_a_tuple_of_floats(value, expected):
    assert load(f"{{size: 1, mean: {value}}}").mean == expected


@pytest.mark.parametrize("value", ["[1, a]", "abc", "[true]", "{a: 1}"])
def test_number_or_list_refuses_other_values(value):
    [problem] = problems_of(f"{{size: 1, mean: {value}}}")
    assert problem.startswith("mean: must be a number or a list of numbers (got ")


def test_string_or_list_gives_a_tuple_of_strings():
    assert load("{size: 1, tags: [a, 2]}").tags == ("a", "2")
    assert load("{size: 1, tags: a}").tags == ("a",)


def test_choice():
    assert load("{size: 1, mode: exact}").mode == "exact"
    assert problems_of("{size: 1, mode: slow}") == [
        "mode: must be one of 'fast', 'exact' (got 'slow')"]


@pytest.mark.parametrize(("param_str", "problem"), [
    ("{size: 0}", "size: must be >= 1 (got 0) (e.g. size: 8)"),
    ("{size: 101}", "size: must be <= 100 (got 101) (e.g. size: 8)"),
    ("{size: 1, ratio: -0.5}", "ratio: must be >= 0 (got -0.5)"),
    ("{size: 1, ratio: 1.5}", "ratio: must be <= 1 (got 1.5)"),
    ("{size: 1, limit: -1}", "limit: must be >= 0 (got -1)"),
])
def test_ranges(param_str, problem):
    assert problems_of(param_str) == [problem]


def test_range_bounds_are_inclusive():
    assert load("{size: 100, ratio: 1}") == Toy(size=100, ratio=1.0)
    assert load("{size: 1, ratio: 0}") == Toy(size=1, ratio=0.0)


def test_optional_key_takes_none():
    assert load("{size: 1, limit: null}").limit is None
    assert load("{size: 1, limit: ~}").limit is None
    assert load("{size: 1, limit: 0}").limit == 0


def test_none_for_a_key_with_a_default_is_refused():
    assert problems_of("{size: 1, ratio: null}") == ["ratio: must be a number (got None)"]


# --- cross-key problems and reporting everything at once --------------------------------------


def test_cross_key_problems():
    assert problems_of("{size: 1, low: 5, high: 2}") == ["low, high: low must be <= high "
                                                         "(got 5 > 2)"]


def test_cross_key_problems_come_with_the_single_key_problems():
    assert problems_of("{size: 0, low: 5, high: 2, flag: true}") == [
        "size: must be >= 1 (got 0) (e.g. size: 8)",
        "low, high: low must be <= high (got 5 > 2)",
        "flag, name: flag needs a name"]


def test_cross_key_problems_involving_a_reported_key_are_left_out():
    # `flag` is bad (reported), so the flag/name check is not; low/high still is.
    assert problems_of("{size: 1, flag: 1, low: 5, high: 2}") == [
        "flag: must be true or false (got 1)",
        "low, high: low must be <= high (got 5 > 2)"]
    # An unknown key counts as reported too.
    assert problems_of("{size: 1, hgh: 3, high: -1, low: 0}") == [
        "hgh: unknown key; did you mean 'high'?",
        "low, high: low must be <= high (got 0 > -1)"]


def test_a_bad_value_does_not_reach_problems_as_a_placeholder():
    # `low: x` is refused; problems() sees low's default instead and its check is left out.
    assert problems_of("{size: 1, low: x, high: 2}") == ["low: must be an integer (got 'x')"]


def test_the_keys_of_a_problem_are_data_not_read_from_its_message():
    # The unknown key 'low: typo' is not the key `low`: the low/high check still counts.
    assert problems_of("{size: 1, low: 5, high: 2, 'low: typo': 1}") == [
        "low: typo: unknown key; known keys: size, ratio, flag, name, mean, tags, mode, limit, "
        "low, high",
        "low, high: low must be <= high (got 5 > 2)"]


def test_a_problem_carries_its_keys_and_is_its_message():
    found = problem("low, high", "low must be <= high")
    assert (found.keys, found.text, found.involves) == (("low", "high"), "low must be <= high",
                                                         ())
    assert found == "low, high: low must be <= high"
    assert config.Problem(("a",), "b", involves=("c",)).involves == ("c",)


@dataclasses.dataclass(frozen=True)
class Buggy:
    size: int = option(INT, 1)

    def problems(self) -> list:
        raise ValueError("a bug in problems()")


def test_an_exception_in_problems_is_not_swallowed():
    with pytest.raises(ValueError, match="a bug in problems"):
        config.load(Buggy, "{size: 2}")


def test_a_check_reading_a_refused_key_is_left_out_through_involves():
    @dataclasses.dataclass(frozen=True)
    class Pair:
        low: int = option(INT, 0)
        high: int = option(INT, 10)

        def problems(self) -> list:
            if self.low > self.high:
                return [config.Problem(("low",), "must be <= high", involves=("high",))]
            return []

    with pytest.raises(ConfigError) as info:
        config.load(Pair, "{low: 20, high: x}")
    assert str(info.value).count("  - ") == 1, "the low/high check read high's placeholder"


def test_every_problem_is_in_one_error():
    message_lines = problems_of("{size: 1.5, ratio: 1/255, mode: slow, colour: red, "
                                "flag: true}")
    assert message_lines == [
        "colour: unknown key; known keys: size, ratio, flag, name, mean, tags, mode, limit, low, "
        "high",
        "size: must be an integer (got 1.5) (e.g. size: 8)",
        f"ratio: must be a number; write {1 / 255!r} (got '1/255')",
        "mode: must be one of 'fast', 'exact' (got 'slow')",
        "flag, name: flag needs a name"]
    with pytest.raises(ConfigError, match=r"^param_str has 5 problems:\n"):
        load("{size: 1.5, ratio: 1/255, mode: slow, colour: red, flag: true}")


def test_wrap_in_braces_hint_when_keys_were_flattened_into_a_value():
    with pytest.raises(ConfigError) as info:
        load("name: cat, size:8")
    message = str(info.value)
    assert "  - size: required, an integer (e.g. size: 8)" in message
    assert message.endswith("\nHint: a value contains ', key:'; in one-line YAML wrap the whole "
                            "mapping in braces: \"{source: train.txt, batch_size: 64}\"")


def test_no_braces_hint_for_an_ordinary_comma():
    with pytest.raises(ConfigError) as info:
        load("{size: 0, name: 'cats, dogs'}")
    assert "Hint" not in str(info.value)


# --- describe ---------------------------------------------------------------------------------


def test_describe_lists_every_key_with_kind_default_and_doc():
    rows = config.describe(Toy)
    assert [row[0] for row in rows] == ["size", "ratio", "flag", "name", "mean", "tags", "mode",
                                        "limit", "low", "high"]
    by_key = {row[0]: row for row in rows}
    assert by_key["size"] == ("size", "an integer", "required", "items per batch",
                              "toy_param.size")
    assert by_key["ratio"] == ("ratio", "a number", "0.5", "a fraction", "")
    assert by_key["mode"] == ("mode", "one of fast, exact", "'fast'", "", "")
    assert by_key["limit"] == ("limit", "an integer", "None", "optional, no value by default",
                               "")
    assert by_key["mean"][1:3] == ("a number or a list of numbers", "()")
    assert by_key["tags"][1] == "a string or a list of strings"
    assert by_key["flag"][1:3] == ("true or false", "False")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_float_refuses_non_finite_numbers(value):
    [problem] = problems_of(f"{{size: 1, ratio: {value}}}")
    assert problem.startswith("ratio: must be a finite number (got ")


def test_a_key_given_twice_is_an_error():
    with pytest.raises(ConfigError, match="line 1, column 17: key 'size' is given twice"):
        load("{size: 1, a: 2, size: 3}")


def test_one_line_yaml_without_braces_gets_the_braces_hint():
    with pytest.raises(ConfigError, match="one-line YAML needs braces around the whole mapping"):
        load("size: 1, ratio: 2")


# --- YAML tags ------------------------------------------------------------------------------


TAG_FIX = ("write the plain value without the tag, e.g. param_str: \"{source: train.txt, "
           "batch_size: 64}\"")


@pytest.mark.parametrize(("param_str", "where"), [
    ("{size: !!python/object/apply:os.system [echo hi]}",
     "key 'size' is tagged '!!python/object/apply:os.system'"),
    ("{size: 1, mean: [1, !!python/name:os.system ]}",
     "key 'mean' is tagged '!!python/name:os.system'"),
    ("{size: 1, name: !!str 3}", "key 'name' is tagged '!!str'"),
    ("{size: 1, name: !local x}", "key 'name' is tagged '!local'"),
    ("!!python/object:collections.OrderedDict {size: 1}",
     "got the tag '!!python/object:collections.OrderedDict'"),
])
def test_a_tag_is_refused_naming_the_key(param_str, where):
    with pytest.raises(ConfigError) as info:
        load(param_str)
    assert str(info.value) == f"tags are not allowed in param_str ({where}); {TAG_FIX}"


def test_a_python_tag_is_never_constructed(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ConfigError, match="^tags are not allowed in param_str"):
        load(f"{{size: !!python/object/apply:os.system ['touch {marker}']}}")
    assert not marker.exists()


def test_anchors_and_aliases_are_not_tags():
    assert load("{size: &n 3, limit: *n}").limit == 3
