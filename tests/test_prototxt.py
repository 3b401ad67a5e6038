"""The prototxt reader: each syntax feature (CAFFE.md, "Prototxt"), value helpers, error places."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffe_layers.errors import CaffeLayersError
from caffe_layers.testing.prototxt import (
    Identifier,
    Message,
    PrototxtError,
    as_bool,
    as_enum,
    as_float,
    as_int,
    as_str,
    parse,
    parse_file,
    to_text,
)

PHASES = {"TRAIN": 0, "TEST": 1}


def test_scalars_keep_their_kind():
    msg = parse('s: "text" i: 42 f: 0.5 e: TRAIN b: true')
    assert msg.fields == [("s", "text"), ("i", 42), ("f", 0.5), ("e", "TRAIN"), ("b", "true")]
    assert type(msg.get("s")) is str
    assert type(msg.get("i")) is int
    assert type(msg.get("f")) is float
    assert type(msg.get("e")) is Identifier
    assert type(msg.get("b")) is Identifier


def test_comments_are_ignored_everywhere():
    msg = parse('# header\nname: "a # not a comment" # trailing\n# only comment\nlr: 1 #x\n')
    assert msg.fields == [("name", "a # not a comment"), ("lr", 1)]


def test_both_quote_styles():
    msg = parse("a: \"double 'inner'\" b: 'single \"inner\"'")
    assert msg.get("a") == "double 'inner'"
    assert msg.get("b") == 'single "inner"'


@pytest.mark.parametrize(("written", "expected"), [
    (r'"\n"', "\n"), (r'"\t"', "\t"), (r'"\\"', "\\"), (r'"\""', '"'), (r"'\''", "'"),
    (r'"\x41\x6a"', "Aj"), (r'"\101\60"', "A0"), (r'"\0"', "\0"),
    (r'"\r\a\b\f\v\?"', "\r\a\b\f\v?"),
    (r'"\303\251"', "é"), (r'"\u00e9"', "é"), ('"é"', "é"),
])
def test_c_escapes(written, expected):
    assert parse(f"s: {written}").get("s") == expected


def test_adjacent_strings_are_concatenated_across_lines_and_comments():
    msg = parse('p: "{batch_size: 8, "  # first part\n   \'shape: [3, 4]}\'\n   "" n: 1')
    assert msg.get("p") == "{batch_size: 8, shape: [3, 4]}"
    assert msg.get("n") == 1


@pytest.mark.parametrize(("written", "expected"), [
    ("0", 0), ("-7", -7), ("0x1F", 31), ("-0x10", -16), ("017", 15), ("123456789012", 123456789012),
])
def test_integers(written, expected):
    value = parse(f"v: {written}").get("v")
    assert type(value) is int
    assert value == expected


@pytest.mark.parametrize(("written", "expected"), [
    ("1.5", 1.5), ("1e-3", 1e-3), ("-2.5E2", -250.0), (".5", 0.5), ("3.", 3.0), ("2f", 2.0),
    ("0.25F", 0.25), ("inf", math.inf), ("-inf", -math.inf), ("Infinity", math.inf),
    ("- 4", -4),
])
def test_floats(written, expected):
    value = parse(f"v: {written}").get("v")
    assert value == expected
    assert type(value) is type(expected)


def test_nan_word():
    value = parse("v: nan").get("v")
    assert isinstance(value, float)
    assert math.isnan(value)


def test_message_syntaxes_are_equivalent():
    braces = parse("p { a: 1 b { c: 'x' } }")
    assert parse("p: { a: 1 b: { c: 'x' } }") == braces
    assert parse("p < a: 1 b < c: 'x' > >") == braces
    assert parse("p: < a: 1, b { c: 'x' }; >") == braces
    assert braces.get("p").get("b").get("c") == "x"


def test_separators_are_optional():
    expected = parse("a: 1 b: 2 c { d: 3 } e: 4")
    assert parse("a: 1, b: 2; c { d: 3; }, e: 4;") == expected
    assert parse("a: 1\nb: 2\nc {\n  d: 3\n}\ne: 4\n") == expected


def test_repeated_fields_by_repetition_and_lists_are_flattened():
    msg = parse("dim: 1 dim: [2, 3] other: 0 dim: [] dim: 4")
    assert msg.getall("dim") == [1, 2, 3, 4]
    assert msg.get("dim") == 4
    assert msg.fields[:3] == [("dim", 1), ("dim", 2), ("dim", 3)]
    assert msg.getall("missing") == []


def test_list_of_messages_and_of_strings():
    msg = parse("layer: [{ name: 'a' }, < name: 'b' >] top: ['x' 'y', \"z\"]")
    assert [layer.get("name") for layer in msg.getall("layer")] == ["a", "b"]
    assert msg.getall("top") == ["xy", "z"]


def test_get_default_contains_and_names():
    msg = parse("a: 1 b: 2 a: 3")
    assert msg.get("a") == 3
    assert msg.get("zz") is None
    assert msg.get("zz", 7) == 7
    assert "b" in msg
    assert "zz" not in msg
    assert msg.names() == ["a", "b"]
    assert len(msg) == 3


def test_nesting_and_locations():
    msg = parse("net {\n  layer {\n    name: 'x'\n  }\n}\n", source="n.prototxt")
    layer = msg.get("net").get("layer")
    assert layer.get("name") == "x"
    assert layer.where() == "n.prototxt:2:3"
    assert layer.where("name") == "n.prototxt:3:5"
    assert msg.where("net") == "n.prototxt:1:1"


def test_equality_distinguishes_kinds_and_order():
    assert parse("a: 'TRAIN'") != parse("a: TRAIN")
    assert parse("a: 1") != parse("a: 1.0")
    assert parse("a: 1 b: 2") != parse("b: 2 a: 1")
    assert parse("a: 1") == Message([("a", 1)])
    assert parse("a { }") == Message([("a", Message())])
    assert parse("") == Message()


def test_repr_is_readable_prototxt():
    msg = parse("layer { name: \"d\" include { phase: TRAIN } } v: 1.5")
    assert repr(msg) == 'Message(layer { name: "d" include { phase: TRAIN } } v: 1.5)'
    assert repr(Identifier("TEST")) == "Identifier('TEST')"


def test_enums_by_name_and_number():
    assert as_enum(parse("phase: TEST").get("phase"), PHASES) == 1
    assert as_enum(parse("phase: 0").get("phase"), PHASES) == 0
    with pytest.raises(PrototxtError, match=r"phase: unknown value TSET .*TRAIN \(0\), TEST \(1\)"):
        as_enum(parse("phase: TSET").get("phase"), PHASES, name="phase")
    with pytest.raises(PrototxtError, match=r"unknown value 2"):
        as_enum(parse("phase: 2").get("phase"), PHASES)
    with pytest.raises(PrototxtError, match=r"without quotes"):
        as_enum(parse("phase: 'TEST'").get("phase"), PHASES)


@pytest.mark.parametrize(("written", "expected"), [
    ("true", True), ("false", False), ("True", True), ("False", False), ("1", True), ("0", False),
])
def test_as_bool(written, expected):
    assert as_bool(parse(f"b: {written}").get("b")) is expected


@pytest.mark.parametrize("written", ["'true'", "2", "yes", "1.0", "{ }"])
def test_as_bool_rejects(written):
    with pytest.raises(PrototxtError, match=r"^flag: expected true or false"):
        as_bool(parse(f"flag: {written}").get("flag"), name="flag")


def test_typed_helpers():
    msg = parse("i: 3 f: 2 s: 'x' w: word")
    assert as_int(msg.get("i")) == 3
    assert as_float(msg.get("f")) == 2.0
    assert as_str(msg.get("s")) == "x"
    with pytest.raises(PrototxtError, match=r"^max_iter: expected an integer, got 'x'"):
        as_int(msg.get("s"), name="max_iter")
    with pytest.raises(PrototxtError, match=r"expected a number, got word"):
        as_float(msg.get("w"))
    with pytest.raises(PrototxtError, match=r"expected a quoted string, got word"):
        as_str(msg.get("w"))


def test_error_is_a_value_error_and_a_caffe_layers_error():
    with pytest.raises(ValueError, match="missing value") as info:
        parse("a: ")
    assert isinstance(info.value, CaffeLayersError)


@pytest.mark.parametrize(("text", "line", "col", "message"), [
    ('a: 1\nb: "open', 2, 4, "unterminated string"),
    ("a: 'x\ny'", 1, 4, "unterminated string"),
    ("layer {\n  name: 'x'\n", 1, 7, "'{' opened here is never closed (add '}'"),
    ("a {\n b < c: 1 }\n}", 2, 11, "expected '>' to close '<' opened at line 2, column 4, got '}'"),
    ("a: 1\n}", 2, 1, "unexpected '}' with no open message"),
    ("a: 1\nb:", 2, 1, "missing value for 'b' (write b: <value>)"),
    ("a:\nb: 2", 1, 1, "missing value for 'a'"),
    ("x { a: }", 1, 5, "missing value for 'a'"),
    ("a: 1.2.3", 1, 4, "invalid number '1.2.3'"),
    ("a: 12abc", 1, 4, "invalid number '12abc'"),
    ("a: 09", 1, 4, "invalid octal number '09'"),
    ("  a 5", 1, 5, "expected ':' or '{' after 'a', got '5'"),
    ('a: "\\q"', 1, 5, "invalid escape '\\q' in string"),
    ("a: [1 2]", 1, 7, "expected ',' or ']' in the list of 'a' opened at line 1, column 4"),
    ("a: [1,", 1, 1, "missing value for 'a'"),
    ("a = 1", 1, 3, "unexpected character '='"),
    ("a: -x", 1, 4, "expected a number after '-'"),
    ('"a": 1', 1, 1, "expected a field name, got a string"),
])
def test_syntax_errors_say_where_what_and_how(text, line, col, message):
    with pytest.raises(PrototxtError) as info:
        parse(text, source="net.prototxt")
    error = info.value
    assert str(error).startswith(f"net.prototxt:{line}:{col}: {message}")
    assert str(error).endswith(")")
    assert (error.source, error.line, error.col) == ("net.prototxt", line, col)
    assert error.fix


NET = r'''
# A realistic training net: a Python data layer in each phase, then computed layers.
name: "ExampleNet"
layer {
  name: "data"
  type: "Python"
  top: "data"
  top: "label"
  include { phase: TRAIN }
  python_param {
    module: "caffe_layers.layers"
    layer: "ImageDataLayer"
    param_str: "{source: 'train.txt', batch_size: 64,\n"
               "  new_height: 256, new_width: 256,\n"   # resize first
               "  crop_size: 227, mirror: true}"
  }
}
layer {
  name: "data"
  type: "Python"
  top: "data"
  top: "label"
  include: { phase: 1 }
  python_param < module: 'caffe_layers.layers' layer: 'ImageDataLayer'
                 param_str: '{source: "val.txt", batch_size: 50}' >
}
layer {
  name: "fc"; type: "InnerProduct"; bottom: "data"; top: "fc"
  param { lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } }
}
layer { name: "loss" type: "SoftmaxWithLoss" bottom: ["fc", "label"] top: "loss" }
layer {
  name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy"
  exclude { phase: TRAIN }
}
'''


def test_realistic_net(tmp_path):
    path = tmp_path / "train_val.prototxt"
    path.write_text(NET)
    net = parse_file(path)
    assert net.get("name") == "ExampleNet"
    layers = net.getall("layer")
    assert [layer.get("name") for layer in layers] == ["data", "data", "fc", "loss", "accuracy"]
    train, test = layers[0], layers[1]
    assert as_enum(train.get("include").get("phase"), PHASES) == 0
    assert as_enum(test.get("include").get("phase"), PHASES) == 1
    assert train.getall("top") == ["data", "label"]
    python = train.get("python_param")
    assert python.get("layer") == "ImageDataLayer"
    assert python.get("param_str") == ("{source: 'train.txt', batch_size: 64,\n  new_height: 256, "
                                       "new_width: 256,\n  crop_size: 227, mirror: true}")
    assert test.get("python_param").get("param_str") == '{source: "val.txt", batch_size: 50}'
    assert [p.get("lr_mult") for p in layers[2].getall("param")] == [1, 2]
    filler = layers[2].get("inner_product_param").get("weight_filler")
    assert filler.get("std") == 0.01
    assert layers[3].getall("bottom") == ["fc", "label"]
    assert as_enum(layers[4].get("exclude").get("phase"), PHASES) == 0
    assert "include" not in layers[4]
    assert layers[1].where() == f"{path}:18:1"
    assert layers[1].where("include") == f"{path}:23:3"


SOLVER = '''
net: "prototxt/train_val.prototxt"
test_iter: 100          # 100 x 50 = all 5000 validation images
test_interval: 1000
test_initialization: false
base_lr: 0.01
lr_policy: "step"
gamma: 0.1
stepsize: 100000
display: 20
max_iter: 450000
momentum: 0.9
weight_decay: 0.0005
snapshot: 10000
snapshot_prefix: "models/example"
solver_mode: GPU
random_seed: -1
iter_size: 2
'''


def test_realistic_solver():
    solver = parse(SOLVER, source="solver.prototxt")
    assert as_str(solver.get("net")) == "prototxt/train_val.prototxt"
    assert solver.getall("test_iter") == [100]
    assert as_bool(solver.get("test_initialization")) is False
    assert as_float(solver.get("base_lr")) == 0.01
    assert as_float(solver.get("weight_decay")) == 0.0005
    assert as_int(solver.get("max_iter")) == 450000
    assert as_int(solver.get("random_seed")) == -1
    assert as_enum(solver.get("solver_mode"), {"CPU": 0, "GPU": 1}) == 1
    assert solver.get("snapshot_prefix") == "models/example"


# Round trip: to_text writes what parse reads back equal, for arbitrary messages.
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_words = _names.filter(lambda w: w.lower() not in ("inf", "infinity", "nan")).map(Identifier)
_scalars = st.one_of(
    st.text(max_size=12), st.integers(-2**63, 2**64), _words,
    st.floats(allow_nan=False),
)
_messages = st.recursive(
    st.lists(st.tuples(_names, _scalars), max_size=4).map(Message),
    lambda inner: st.lists(st.tuples(_names, st.one_of(_scalars, inner)), max_size=4).map(Message),
    max_leaves=12,
)


@given(_messages)
def test_to_text_round_trips(msg):
    assert parse(to_text(msg)) == msg
    assert parse(to_text(msg, indent=None)) == msg
