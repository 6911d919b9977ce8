import base64
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2, read_binary, read_text, to_text


def test_text_round_trip_keeps_caffe_field_names(tmp_path):
    net = caffe_pb2.NetParameter(name="n")
    layer = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    layer.convolution_param.num_output = 8
    layer.convolution_param.kernel_size.append(3)
    layer.include.add(phase=caffe_pb2.TRAIN)
    text = to_text(net)
    assert "convolution_param {\n    num_output: 8\n    kernel_size: 3" in text
    path = tmp_path / "n.prototxt"
    path.write_text(text)
    assert read_text(path, caffe_pb2.NetParameter()) == net


def test_field_numbers_match_caffe():
    # The wire format is what makes our files Caffe's files: spot-check the numbers.
    fields = caffe_pb2.Datum.DESCRIPTOR.fields_by_name
    assert [
        fields[n].number for n in ("channels", "height", "width", "data", "label", "encoded")
    ] == [1, 2, 3, 4, 5, 7]
    layer = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert layer["convolution_param"].number == 106
    assert layer["batch_norm_param"].number == 139
    assert caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name["layer"].number == 100
    assert caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name["type"].number == 40


def test_parse_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  nme: "conv"\n}\n')
    with pytest.raises(UpcallError, match=r"bad\.prototxt:3:3 .*nme"):
        read_text(path, caffe_pb2.NetParameter())


def test_binary_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "x.caffemodel"
    path.write_bytes(b"\xff\xff\xff")
    with pytest.raises(UpcallError, match=r"x\.caffemodel: not a valid NetParameter"):
        read_binary(path, caffe_pb2.NetParameter())


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None, reason="needs grpcio-tools")
def test_generated_module_matches_the_proto():
    subprocess.run([sys.executable, "-m", "upcall.proto.regenerate", "--check"], check=True)


def _default(field) -> object:
    """A field's default as a value: protoc versions spell the same float default differently
    (1e-08, 9.99999994e-09)."""
    if field.default_value and field.type == descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT:
        return float(np.float32(field.default_value))
    if field.default_value and field.type == descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE:
        return float(field.default_value)
    return field.default_value


def _schema(file_proto) -> dict:
    """Every message (nested ones by dotted name), field and enum of a FileDescriptorProto as
    plain values: what the wire and text formats depend on."""
    enums = {e.name: {v.name: v.number for v in e.value} for e in file_proto.enum_type}
    out = {"(file)": {"fields": {}, "enums": enums, "oneofs": {}}}

    def walk(messages, prefix):
        for m in messages:
            name = prefix + m.name
            out[name] = {
                "fields": {
                    f.name: (
                        f.number,
                        f.label,
                        f.type,
                        f.type_name,
                        _default(f),
                        f.options.packed,
                    )
                    for f in m.field
                },
                "enums": {e.name: {v.name: v.number for v in e.value} for e in m.enum_type},
                "oneofs": {o.name: i for i, o in enumerate(m.oneof_decl)},
            }
            walk(m.nested_type, name + ".")

    walk(file_proto.message_type, "")
    return out


def test_schema_equals_real_caffes(caffe, tmp_path):
    # The real caffe_pb2 of the Caffe root, read by the root's own python in one call.
    program = Path(__file__).with_name("caffe_descriptors.py")
    result = caffe.run_tool("python3", str(program), binds=[program.parent], cwd=tmp_path)
    real = descriptor_pb2.FileDescriptorProto.FromString(
        base64.b64decode(result.stdout.split()[-1])
    )
    ours = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(ours)
    assert (ours.package, ours.syntax or "proto2") == (real.package, real.syntax or "proto2")
    theirs, mine = _schema(real), _schema(ours)
    assert sorted(mine) == sorted(theirs)
    differences = [
        (name, part, key, mine[name][part].get(key), theirs[name][part].get(key))
        for name in theirs
        for part in theirs[name]
        for key in sorted({*mine[name][part], *theirs[name][part]})
        if mine[name][part].get(key) != theirs[name][part].get(key)
    ]
    assert differences == []  # (message, part, name, ours, real Caffe's)
    assert len(theirs) > 60
