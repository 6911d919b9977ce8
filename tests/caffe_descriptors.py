"""Run by the Caffe root's python (tests/test_proto.py): print the real caffe_pb2's file
descriptor, serialized and base64-encoded, on one line."""

import base64

from caffe.proto import caffe_pb2
from google.protobuf import descriptor_pb2

proto = descriptor_pb2.FileDescriptorProto()
caffe_pb2.DESCRIPTOR.CopyToProto(proto)
print(base64.b64encode(proto.SerializeToString()).decode("ascii"))
