"""The generated messages and stubs of the wire protocol, package ``lockmgr.v1``.

``lockmgr_pb2``, ``lockmgr_pb2.pyi`` and ``lockmgr_pb2_grpc`` are generated from the
project's ``proto/proto/lockmgr/v1/lockmgr.proto`` by ``scripts/generate_stubs.py``
(grpcio-tools); do not edit them. The ``.proto``'s package is ``lockmgr.v1``, so the
generated code lives here, inside the ``lockmgr`` distribution, as its imports expect.
"""
